"""PostgreSQL's own client tools for ``outcomes backup`` and ``outcomes restore``: ``pg_dump
--format=custom`` of the ledger's tables and ``pg_restore`` of such a dump (ADR 0024).

The connection settings reach the tools through libpq's environment variables (``PGHOST``,
``PGPORT``, ``PGDATABASE``, ``PGUSER``, ``PGPASSWORD``, ``PGCONNECT_TIMEOUT``,
``PGTARGETSESSIONATTRS``, ``PGAPPNAME``; PostgreSQL manual, "libpq Environment Variables"), never
on the command line, where ``ps`` would show a password to every user of the host. A dump can be
restored by a ``pg_restore`` of its major version or newer, and ``pg_dump`` refuses a server newer
than itself: both are checked first, with one line naming what to install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootstrap import Settings

VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
TIMEOUT = 3600.0  # seconds a dump or a restore may take before it is abandoned


class ToolError(Exception):
    """A client tool is missing, too old, or failed (one line, no password)."""


# libpq variables that would send a tool elsewhere than the settings say (PGHOSTADDR is used
# instead of PGHOST); the others (PGSSLMODE, PGSSLROOTCERT, ...) reach the tools as they are.
STRAY = ("PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE", "PGTARGETSESSIONATTRS", "PGPASSWORD")


def libpq_environ(settings: Settings) -> dict[str, str]:
    """The process environment for a client tool: the current one (so ``PGSSLMODE`` and
    ``PGSSLROOTCERT`` apply as they do to the service's own connections) without ``STRAY``,
    plus the settings' connection as libpq variables."""
    environ = {name: value for name, value in os.environ.items() if name not in STRAY}
    environ.update({
        "PGHOST": settings.postgres_host, "PGPORT": settings.postgres_port,
        "PGDATABASE": settings.postgres_dbname, "PGUSER": settings.postgres_user,
        "PGCONNECT_TIMEOUT": str(max(2, settings.postgres_connect_timeout)),
        "PGAPPNAME": "outcomes-backup"})
    if settings.postgres_password is not None:
        environ["PGPASSWORD"] = settings.postgres_password.get_secret_value()
    if "," in settings.postgres_host:
        environ["PGTARGETSESSIONATTRS"] = "read-write"
    return environ


def connect(settings: Settings, **options: Any) -> Any:
    """A psycopg connection to the settings' database (dict rows; ``options`` passed on)."""
    import psycopg
    from psycopg.rows import dict_row

    params: dict[str, Any] = {
        "host": settings.postgres_host, "port": settings.postgres_port,
        "dbname": settings.postgres_dbname, "user": settings.postgres_user,
        "password": (settings.postgres_password.get_secret_value()
                     if settings.postgres_password else ""),
        "connect_timeout": max(2, settings.postgres_connect_timeout),
        "application_name": "outcomes-backup"}
    if "," in settings.postgres_host:
        params["target_session_attrs"] = "read-write"
    return psycopg.connect(row_factory=dict_row, **params, **options)


def tool_version(tool: str) -> tuple[int, int]:
    """The (major, minor) version of ``pg_dump`` or ``pg_restore`` on the PATH; ToolError when
    it is not installed or does not say."""
    path = shutil.which(tool)
    if path is None:
        raise ToolError(f"{tool} not found on the PATH: install PostgreSQL's client tools "
                        "(Debian: postgresql-client) of the server's major version or newer")
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                          check=False)
    found = VERSION.search(done.stdout)
    if found is None:
        raise ToolError(f"{tool} --version did not name a PostgreSQL version")
    return int(found.group(1)), int(found.group(2) or 0)


def check_tool(tool: str, server_version_num: int) -> str:
    """Refuse ``tool`` when its major version is older than the server's (``server_version_num``
    as ``SHOW server_version_num`` gives it, e.g. 150018); returns its version text."""
    major, minor = tool_version(tool)
    server_major = server_version_num // 10000
    if major < server_major:
        raise ToolError(f"{tool} {major}.{minor} is older than the server (PostgreSQL "
                        f"{server_major}): install postgresql-client-{server_major} or newer")
    return f"{major}.{minor}"


def _run(command: list[str], settings: Settings, what: str) -> None:
    try:
        done = subprocess.run(command, env=libpq_environ(settings), capture_output=True,
                              text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{what} took more than {TIMEOUT:g} s and was stopped") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ToolError(f"{what} exited {done.returncode}: {lines[0] if lines else 'no output'}")


def dump(settings: Settings, file: Path, tables: Sequence[str], snapshot: str) -> None:
    """``pg_dump --format=custom`` of ``tables`` (names in the settings' schema) into ``file``,
    reading the exported ``snapshot`` (``pg_export_snapshot()`` of a transaction still open), so
    the dump holds exactly what that transaction sees. Raises ToolError."""
    schema = settings.postgres_schema
    command = [shutil.which("pg_dump") or "pg_dump", "--format=custom", f"--file={file}",
               f"--snapshot={snapshot}", "--no-password",
               *[f'--table="{schema}"."{table}"' for table in tables]]
    _run(command, settings, "pg_dump")


def restore(settings: Settings, file: Path) -> None:
    """``pg_restore`` of ``file`` into the settings' database, in one transaction (all or
    nothing), the objects of the dump dropped first if they exist, owned by the settings' user.
    Raises ToolError."""
    command = [shutil.which("pg_restore") or "pg_restore", "--single-transaction",
               "--exit-on-error", "--clean", "--if-exists", "--no-owner", "--no-privileges",
               "--no-password", f"--dbname={settings.postgres_dbname}", str(file)]
    _run(command, settings, "pg_restore")
