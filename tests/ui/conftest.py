"""Fixtures of the browser tests (tests/ui/browser_helpers.py): Debian's Chromium through
Playwright, axe-core from ui/node_modules."""

from __future__ import annotations

from browser_helpers import browser, page, playwright  # noqa: F401  (fixtures)
