"""How the pages write dates and times: a clinical date "5 Jan 2026" (English month
abbreviations, whatever the server's locale; the summary sentence, the tables and the charts'
ticks) and a recorded time in UTC (``when``)."""

from __future__ import annotations

from datetime import UTC, datetime

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def when(moment: datetime | str | None) -> str:
    """A recorded time (a timezone-aware datetime or its ISO text) in UTC, to the second, as
    the pages show it: "2026-01-05 09:30:00 UTC"; "–" for none."""
    if moment is None or moment == "":
        return "–"
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
