"""Private files: every file the service writes is mode 0600 in a folder of mode 0700 (issue 11).

The stores hold pseudonymous clinical data and key material, so nobody but the service's own OS
user may read them: SQLite event stores and their ``-wal``/``-shm`` files, the read models under
``views/``, the shadow-run results, ``pseudonym.key``, ``dev-issuer.key``, the checkpoints and
their signing key, the erasure log. Three mechanisms, each a backstop for the others (ADR 0024):

- ``private_umask``: the CLI sets the process umask to 0o077 (``cli.main``), so whatever a command
  (and the worker and runner processes it starts, which inherit it) creates is private;
- ``private_dir`` / ``private_file`` / ``create_private``: the places that make folders and
  files use them, so a library importing ``bootstrap.build`` without the CLI gets the same modes
  (SQLite gives ``-wal`` and ``-shm`` the mode of their database file, so a database created
  0600 here keeps its companions 0600 under any umask);
- ``tighten_store``: a store made before issue 11 (files 0644, folders 0755) is tightened when it
  is opened, logged once (a count and the folder, never a file's content).

Only what this OS user owns is changed, and never a sticky folder (``/tmp``): a store configured
at ``/tmp/outcomes.sqlite`` leaves ``/tmp`` alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from bootstrap import Settings

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
UMASK = 0o077
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")  # a database file and what SQLite adds

log = structlog.get_logger("trust.files")


def private_umask() -> int:
    """Set the process umask to 0o077 (files 0600, folders 0700 at most); returns the old one."""
    return os.umask(UMASK)


def _tighten(path: Path, mode: int) -> bool:
    """chmod ``path`` to ``mode`` when it exists, is owned by this process's user, is not a
    sticky folder and has another mode; True when it changed. A path we may not change (another
    user's, a read-only file system) is left as it is."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    if info.st_uid != os.geteuid() or info.st_mode & stat.S_ISVTX:
        return False
    if stat.S_IMODE(info.st_mode) == mode:
        return False
    try:
        os.chmod(path, mode)
    except OSError:
        return False
    return True


def private_dir(path: Path) -> Path:
    """Create the folder ``path`` and its missing parents, each new one mode 0700, and tighten
    ``path`` itself to 0700 (if it is ours, see the module docstring). Returns ``path``. Raises
    OSError when a folder cannot be created."""
    missing: list[Path] = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            new.mkdir(mode=PRIVATE_DIR)
    _tighten(path, PRIVATE_DIR)
    return path


def private_file(path: Path) -> None:
    """chmod the file ``path`` to 0600 if it exists (and is ours); nothing otherwise."""
    _tighten(path, PRIVATE_FILE)


def create_private(path: Path) -> Path:
    """The file ``path``, created empty with mode 0600 when missing (its folder with
    ``private_dir``), else tightened to 0600. Returns ``path``. Used before SQLite opens a
    database (its ``-wal``/``-shm`` then get 0600 too) and for lock files."""
    if not path.exists():
        private_dir(path.parent)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
        os.close(descriptor)
    private_file(path)
    return path


def write_new_private(path: Path, data: bytes) -> bool:
    """Create the file ``path`` (mode 0600, its folder made with ``private_dir``) holding
    ``data``, flushed to disk. Exclusive: when the file exists already (another process made it
    first) nothing is written and False is returned; True when this call wrote it. Used for
    the key files and the checkpoints. Raises OSError when the file cannot be written."""
    private_dir(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return True


def append_private(path: Path, data: bytes) -> None:
    """Append ``data`` to the file ``path`` (created mode 0600 in a ``private_dir`` folder when
    missing), flushed to disk before returning (the erasure log). Raises OSError."""
    private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
    try:
        os.write(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sqlite_files(database: Path) -> list[Path]:
    """A SQLite database file and its companions (``-wal``, ``-shm``, ``-journal``)."""
    return [Path(f"{database}{suffix}") for suffix in SQLITE_COMPANIONS]


def tighten_tree(folder: Path) -> int:
    """Tighten ``folder`` and everything below it (folders 0700, files 0600; symbolic links are
    not followed). Returns how many modes changed (0 when ``folder`` is missing)."""
    if not folder.is_dir():
        return 0
    changed = int(_tighten(folder, PRIVATE_DIR))
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            if not os.path.islink(os.path.join(root, name)):
                changed += _tighten(Path(root, name), PRIVATE_DIR)
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                changed += _tighten(Path(root, name), PRIVATE_FILE)
    return changed


def store_files(settings: Settings) -> list[Path]:
    """The files the service writes beside the store (folder of ``sqlite_path``, also on
    PostgreSQL, where it holds the key files): the SQLite event stores with their companions,
    the pseudonym and dev-issuer keys, the checkpoint signing key and the erasure log."""
    from bootstrap import EVENT_STORES

    folder = settings.sqlite_path.parent
    paths: list[Path] = []
    if settings.store == "sqlite":
        for name in EVENT_STORES:
            paths += sqlite_files(Path(settings.eventsourcing_env(name)["SQLITE_DBNAME"]))
    paths += [folder / "pseudonym.key", folder / "dev-issuer.key", settings.checkpoint_key_path()]
    erasure_log = getattr(settings, "erasure_log_path", None)  # issue 11's keys part
    if callable(erasure_log):
        paths.append(Path(erasure_log()))
    return paths


def store_folders(settings: Settings) -> list[Path]:
    """The folders whose every file is the service's: the read models (``views_folder``) and the
    checkpoints (``checkpoint_folder``)."""
    folders = [settings.views_folder(), settings.checkpoint_folder()]
    return [folder for folder in folders if folder is not None]


def tighten_store(settings: Settings) -> int:
    """Make a store private before it is opened. SQLite: its folder 0700 (created if missing)
    and the event stores' database files created 0600 when missing (so SQLite's ``-wal`` and
    ``-shm`` follow). Both file stores: every existing file of ``store_files`` 0600, every
    folder of ``store_folders`` tightened throughout (on PostgreSQL the key files' folder only
    when it exists). Logs one warning naming the count when a store made before issue 11 was
    tightened. Returns how many modes changed; nothing happens in memory."""
    if settings.store == "memory":
        return 0
    folder = settings.sqlite_path.parent
    changed = int(folder.is_dir() and _tighten(folder, PRIVATE_DIR))
    if settings.store == "sqlite":
        private_dir(folder)
    changed += _tighten_all(store_files(settings))
    for tree in store_folders(settings):
        changed += tighten_tree(tree)
    if settings.store == "sqlite":
        from bootstrap import EVENT_STORES

        for name in EVENT_STORES:
            create_private(Path(settings.eventsourcing_env(name)["SQLITE_DBNAME"]))
    if changed:
        with contextlib.suppress(ValueError, OSError):  # a closed stderr never stops a start
            log.warning("file modes tightened", path=str(folder), count=changed)
    return changed


def _tighten_all(paths: Iterable[Path]) -> int:
    return sum(_tighten(path, PRIVATE_FILE) for path in paths)
