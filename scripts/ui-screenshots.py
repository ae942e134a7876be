#!/usr/bin/env python3
"""`make screenshots`: rewrite the pages' screenshots, docs/screenshots/<page>.png (the README's
pictures and the browser tests' baselines), by running tests/ui/test_e2e_screenshots.py with
OUTCOMES_UPDATE_SCREENSHOTS=1: a freshly seeded store (tests/ui/scenario_helpers.py), Debian's
Chromium at 1280x800, DejaVu Sans. Needs /usr/bin/chromium, fonts-dejavu-core and ui/node_modules
(make .venv/.dev). Exits with pytest's status; lists the files written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"


def main() -> int:
    env = {**os.environ, "OUTCOMES_UPDATE_SCREENSHOTS": "1"}
    status = subprocess.call([sys.executable, "-m", "pytest", "-n", "0", "-q", "-p",
                              "no:cacheprovider", "tests/ui/test_e2e_screenshots.py"],
                             cwd=ROOT, env=env)
    if status == 0:
        for png in sorted(SHOTS.glob("*.png")):
            print(f"{png.relative_to(ROOT)}  {png.stat().st_size // 1024} KiB")
    return status


if __name__ == "__main__":
    sys.exit(main())
