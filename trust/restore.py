"""``outcomes restore SRC``: put a backup (``trust.backup``) back as the configured store, verified
before anything is served (issue 11, ADR 0024).

Steps, each refusing with one line (``BackupError``) before the live store is touched, except
where said:

1. ``manifest.json`` is read and every file's SHA-256 checked (an edited or missing file refuses);
   the backup's store kind must be the configured one (PostgreSQL: and its schema).
2. The target must be free: SQLite, no other process has an event store open (SQLite's own lock
   on its ``-shm`` file, see ``sqlite_in_use``: stop ``outcomes serve`` and the runners); holding
   no event unless ``force``. PostgreSQL, no other ``outcomes`` process connected to the database
   (``pg_stat_activity``'s application names) and no event in the schema unless ``force``.
3. The copy is put in place: SQLite, copied to a folder beside the targets
   (``.restore-<random>``); PostgreSQL, ``pg_restore`` into the schema in one transaction.
4. ``trust.verify.verify`` on the restored copy against the backup's checkpoint (none: the
   chain alone), and its heads compared with the manifest's. The read models are not compared
   (they are rebuilt from the verified events next). A fault refuses: SQLite, the temporary folder is removed
   and the previous store is left as it was; PostgreSQL, the restored tables are dropped again
   (with ``force`` they stay, refused: restore another backup).
5. SQLite only: each verified file replaces its target by an atomic rename (its stale ``-wal``
   and ``-shm`` removed first). PostgreSQL: the read models' tables are created where missing.
6. Every read model is rebuilt from position 0 (``projections.runner.ReadModels.rebuild``).
7. ``application.erasure.reapply_erasure_log``: patients erased after the backup was taken are
   erased again (their keys destroyed, their ErasureCompleted records appended), and the read
   models catch up with those records.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from trust import pgdump
from trust.backup import (
    DUMP_FILE,
    FORMAT,
    MANIFEST,
    RESULTS_FILE,
    BackupError,
    events_table,
    sha256,
    single_file,
    sqlite_store_path,
)
from trust.files import private_dir, sqlite_files

if TYPE_CHECKING:
    from bootstrap import Settings
    from trust.verify import Fault, VerifyReport

DMS_BYTE = 128  # SQLite's "dead man switch" lock byte in a -shm file (os_unix.c UNIX_SHM_DMS)


@dataclass
class RestoreResult:
    """A finished restore: the backup's manifest, the verification of the restored copy,
    events processed per rebuilt read model, the erasures re-applied (results of
    ``reapply_erasure_log``) and the seconds it took."""

    manifest: dict[str, Any]
    report: VerifyReport
    rebuilt: dict[str, int] = field(default_factory=dict)
    erasures: list[Any] = field(default_factory=list)
    seconds: float = 0.0


class RestoreRefused(BackupError):
    """The restored copy did not verify: ``faults`` (trust.verify.Fault) say why."""

    def __init__(self, message: str, faults: list[Fault]) -> None:
        super().__init__(message)
        self.faults = faults


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the backup folder ``src``, every file it lists checked against its
    SHA-256 and size. Raises BackupError naming the first missing or altered file, or a folder
    that is no backup."""
    path = src / MANIFEST
    if not path.is_file():
        raise BackupError(f"{src} holds no {MANIFEST}: not a backup made by `outcomes backup`")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise BackupError(f"{path} cannot be read as JSON: {exc}") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BackupError(f"{path}: not a manifest of format {FORMAT}")
    for name, expected in sorted(manifest["files"].items()):
        file = src / name
        if Path(name).name != name or not file.is_file():
            raise BackupError(f"{name} is missing from the backup")
        if file.stat().st_size != expected.get("bytes") or sha256(file) != expected.get("sha256"):
            raise BackupError(f"{name} differs from the manifest (SHA-256): the backup was "
                              "altered or damaged; restore another one")
    return manifest


def sqlite_in_use(database: Path) -> bool:
    """True when another process has the SQLite database ``database`` open: every connection
    in WAL mode holds a shared POSIX lock on byte 128 of the ``-shm`` file while it is open
    (SQLite's os_unix.c), so an exclusive lock on it cannot be had. Only for a database this
    process has not opened (POSIX locks belong to the process)."""
    shm = Path(f"{database}-shm")
    if not shm.exists():
        return False
    descriptor = os.open(shm, os.O_RDWR)
    try:
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, DMS_BYTE, os.SEEK_SET)
        except OSError:
            return True
        fcntl.lockf(descriptor, fcntl.LOCK_UN, 1, DMS_BYTE, os.SEEK_SET)
        return False
    finally:
        os.close(descriptor)


def restore(settings: Settings, src: Path, *, force: bool = False, public_key: str | None = None,
            progress: Any = None) -> RestoreResult:
    """Restore the backup folder ``src`` into the configured store (the module docstring says
    how). ``public_key``: the checkpoints' verifier key text (``outcomes audit public-key``;
    default the settings' signing key). ``progress(name, position, last)`` is called while
    read models are rebuilt. Raises BackupError (nothing changed; for PostgreSQL with
    ``force`` see the module docstring), RestoreRefused when the copy does not verify,
    ``application.erasure.ErasureRefused`` when the erasure log cannot be re-applied (the
    store is restored and rebuilt then)."""
    started = time.monotonic()
    if settings.store == "memory":
        raise BackupError("OUTCOMES_STORE=memory: restore into a sqlite or postgres store")
    manifest = read_manifest(src)
    if manifest.get("store") != settings.store:
        raise BackupError(f"the backup is of a {manifest.get('store')} store, but OUTCOMES_STORE "
                          f"is {settings.store}")
    checkpoint = src / manifest["checkpoint"] if manifest.get("checkpoint") else None
    if settings.store == "sqlite":
        report = _restore_sqlite(settings, src, manifest, checkpoint, force, public_key)
    else:
        report = _restore_postgres(settings, src, manifest, checkpoint, force, public_key)
    result = RestoreResult(manifest, report)
    result.rebuilt = rebuild_read_models(settings, progress)
    from application.erasure import reapply_erasure_log

    result.erasures = reapply_erasure_log(settings)
    if result.erasures:
        _catch_up(settings)
    result.seconds = time.monotonic() - started
    return result


class _NoReadModels:
    classes: ClassVar[dict[str, Any]] = {}


class _EventStores:
    """The restored copy's three event stores as ``trust.verify.verify`` takes ``services``,
    without read models: those of the copy do not exist yet or are the previous store's, and
    are rebuilt from the verified events next."""

    def __init__(self, stores: dict[str, Any]) -> None:
        self.app, self.runs = stores["outcomes"], stores["rescoring-runs"]
        self.access_log = stores["access-log"]
        self.read_models = self.access_views = _NoReadModels()


def _verify(settings: Settings, checkpoint: Path | None, manifest: dict[str, Any],
            public_key: str | None) -> VerifyReport:
    """Verify the event stores of the restored copy that ``settings`` name (chain, tree,
    checkpoint; not the read models, see ``_EventStores``); RestoreRefused on a fault or on
    heads unlike the manifest's."""
    from trust.verify import Fault, open_stores, verify

    stores = open_stores(settings)
    try:
        report = verify(settings, checkpoint=checkpoint, public_key=public_key,
                        services=_EventStores(stores))
    finally:
        for app in stores.values():
            app.close()
    faults = list(report.faults)
    for name, expected in manifest["event_stores"].items():
        head = report.heads.get(name)
        if head is None or head.size != expected["tree_size"] or head.root.hex() != expected["root"]:
            faults.append(Fault(name, None, "checkpoint-mismatch",
                                f"the restored tree head differs from the manifest's (size "
                                f"{expected['tree_size']}, root {expected['root']})"))
    if faults:
        raise RestoreRefused("the restored copy does not verify: restore refused", faults)
    report.faults, report.ok = [], True
    return report


def _verify_settings(settings: Settings, checkpoint: Path | None, src: Path,
                     **changes: Any) -> Settings:
    """``settings`` for verifying a restored copy: the signing key the live one's, the
    checkpoints the backup's own folder (no fallback onto a later checkpoint of the live store,
    which an older backup is bound to be a truncation of)."""
    return settings.model_copy(update={
        "checkpoint_key_file": settings.checkpoint_key_path(),
        "checkpoint_dir": src if checkpoint is not None else src / ".no-checkpoint",
        **changes})


# -- SQLite ---------------------------------------------------------------------------------------

def _restore_sqlite(settings: Settings, src: Path, manifest: dict[str, Any],
                    checkpoint: Path | None, force: bool, public_key: str | None) -> VerifyReport:
    stores = list(manifest["event_stores"])
    targets = {name: sqlite_store_path(settings, name) for name in stores}
    views = settings.views_folder()
    assert views is not None
    if RESULTS_FILE in manifest["files"]:
        targets[RESULTS_FILE] = views / RESULTS_FILE
    for name in stores:
        if sqlite_in_use(targets[name]):
            raise BackupError(f"{targets[name]} is open in another process: stop `outcomes "
                              "serve` and `outcomes projections run` first")
    if not force and (held := _sqlite_events(targets["outcomes"])):
        raise BackupError(f"{targets['outcomes']} holds {held} events: restore into an empty "
                          "store, or give --force to replace it")
    folder = private_dir(settings.sqlite_path.parent)
    work = private_dir(folder / f".restore-{secrets.token_hex(4)}")
    try:
        staged = {name: work / f"{name}.sqlite" for name in stores}
        for name in stores:
            shutil.copyfile(src / f"{name}.sqlite", staged[name])
        if RESULTS_FILE in targets:
            staged[RESULTS_FILE] = work / "views" / RESULTS_FILE
            private_dir(staged[RESULTS_FILE].parent)
            shutil.copyfile(src / RESULTS_FILE, staged[RESULTS_FILE])
        for path in staged.values():
            path.chmod(0o600)
        copy = _verify_settings(settings, checkpoint, src, sqlite_path=staged["outcomes"],
                                views_dir=work / "views")
        report = _verify(copy, checkpoint, manifest, public_key)
        for name, path in staged.items():
            single_file(path)
            for stale in sqlite_files(targets[name])[1:]:
                stale.unlink(missing_ok=True)
            private_dir(targets[name].parent)
            os.replace(path, targets[name])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _sqlite_events(path: Path) -> int:
    """How many events the SQLite store file ``path`` holds (0: no file, no table)."""
    import sqlite3

    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=10)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


# -- PostgreSQL -----------------------------------------------------------------------------------

def _restore_postgres(settings: Settings, src: Path, manifest: dict[str, Any],
                      checkpoint: Path | None, force: bool, public_key: str | None
                      ) -> VerifyReport:
    from psycopg import sql

    from bootstrap import init_store

    about = manifest.get("postgres") or {}
    schema = settings.postgres_schema
    if about.get("schema") != schema:
        raise BackupError(f"the backup is of schema {about.get('schema')}, but "
                          f"OUTCOMES_POSTGRES_SCHEMA is {schema}: restore into that schema")
    tables: list[str] = list(about.get("tables") or [])
    with pgdump.connect(settings, autocommit=True) as conn:
        try:
            server = int(conn.execute("SHOW server_version_num").fetchone()["server_version_num"])
            pgdump.check_tool("pg_restore", server)
        except pgdump.ToolError as exc:
            raise BackupError(str(exc)) from None
        others = conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND application_name LIKE 'outcomes-%%' "
            "AND application_name <> 'outcomes-backup'").fetchone()["n"]
        if others:
            raise BackupError(f"{others} connections of outcomes processes are open to database "
                              f"{settings.postgres_dbname}: stop `outcomes serve` and "
                              "`outcomes projections run` first")
        held = _postgres_events(conn, schema)
        if held and not force:
            raise BackupError(f"schema {schema} holds {held} events: restore into an empty "
                              "schema, or give --force to replace them")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    try:
        pgdump.restore(settings, src / DUMP_FILE)
    except pgdump.ToolError as exc:
        raise BackupError(str(exc)) from None
    try:
        report = _verify(_verify_settings(settings, checkpoint, src), checkpoint, manifest,
                         public_key)
    except RestoreRefused:
        if not force:
            with pgdump.connect(settings, autocommit=True) as conn:
                for table in tables:
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                        sql.Identifier(schema, table)))
        raise
    # the read models' tables where missing (the old ones are rebuilt next); no event is touched
    init_store(settings, rebuilding=True)
    return report


def _postgres_events(conn: Any, schema: str) -> int:
    """Events in the schema's event tables (0 when they do not exist)."""
    from psycopg import sql

    from bootstrap import EVENT_STORES

    total = 0
    for name in EVENT_STORES:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS found",
                              (f'"{schema}"."{events_table(name)}"',)).fetchone()["found"]
        if exists:
            total += conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(
                sql.Identifier(schema, events_table(name)))).fetchone()["n"]
    return total


# -- after the store is back ----------------------------------------------------------------------

def rebuild_read_models(settings: Settings, progress: Any = None) -> dict[str, int]:
    """Rebuild every read model of the configured store from position 0 (a new generation,
    switched to once caught up); returns events processed per read model."""
    from bootstrap import build

    services = build(settings, rebuilding=True)  # the old store's views are refused: expected
    try:
        done: dict[str, int] = {}
        for models in (services.read_models, services.access_views):
            for name in models.classes:
                def advance(position: int, last: int, name: str = name) -> None:
                    if progress is not None:
                        progress(name, position, last)
                done[name] = models.rebuild(name, advance)
        return done
    finally:
        services.close()


def _catch_up(settings: Settings) -> None:
    from bootstrap import build

    services = build(settings)
    try:
        services.read_models.catch_up()
        services.access_views.catch_up()
    finally:
        services.close()
