"""Bench only: run the ``outcomes`` command with every SQLite connection on another
``PRAGMA synchronous`` level (``NORMAL`` or ``OFF``), never a default (ADR 0029).

Run: ``.venv/bin/python -m bench.sqlite_synchronous NORMAL serve --port 8001`` (what
``bench.api_load --synchronous NORMAL`` does). In WAL mode ``NORMAL`` writes each commit to the
log without an fsync (the log is synced at checkpoints): a commit acknowledged just before a
power cut may be lost, which is why the store keeps ``FULL``. The rate it gives is the upper
bound of group commit (one fsync for several writers' transactions) on this store. Applies to
this process only: with ``--workers N`` the spawned workers keep ``FULL``.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

LEVELS = ("NORMAL", "OFF")


def patch(level: str) -> None:
    """Make every later ``sqlite3.connect`` of this process set ``PRAGMA synchronous=level``.
    Raises ValueError for a level not in ``LEVELS``."""
    if level not in LEVELS:
        raise ValueError(f"synchronous level {level!r}: expected one of {', '.join(LEVELS)}")
    connect = sqlite3.connect

    def connect_with_level(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = connect(*args, **kwargs)
        connection.execute(f"PRAGMA synchronous={level}")
        return connection

    sqlite3.connect = connect_with_level  # type: ignore[assignment]


def main(argv: list[str]) -> None:
    """``argv``: the level, then the ``outcomes`` command's arguments."""
    patch(argv[0])
    from cli import app

    sys.argv = ["outcomes", *argv[1:]]
    app()


if __name__ == "__main__":
    main(sys.argv[1:])
