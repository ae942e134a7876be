"""How the pages write a clinical date: "5 Jan 2026" (English month abbreviations, whatever the
server's locale), one home for the summary sentence, the tables and the charts' ticks."""

from __future__ import annotations

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
