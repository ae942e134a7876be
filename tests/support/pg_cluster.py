"""Throwaway PostgreSQL clusters for the tests: install, initdb, start, stop, standby, promote.

Standard library only, so that ``make test`` can run it before anything is installed:

    python tests/support/pg_cluster.py run -- .venv/bin/pytest -n 2

installs PostgreSQL from Debian's packages when no ``initdb`` is found (as root, or through
sudo), starts a cluster in a temporary directory on a free loopback port with trust
authentication, runs the command with ``OUTCOMES_TEST_POSTGRES_HOST``/``_PORT``/``_USER`` set,
and removes the cluster when the command ends, fails or is interrupted (SIGINT, SIGTERM,
SIGHUP; only a SIGKILL of this script leaves it behind, in ``/tmp/pg-outcomes-*``).

The test clusters run with ``fsync=off`` and ``full_page_writes=off``: a crash of the machine
may corrupt them, which costs nothing for a throwaway cluster, and every commit is
still written to the kernel before it is acknowledged (``synchronous_commit`` stays on), so
killing or restarting the server loses no acknowledged write (what the fault tests check).
``initdb`` refuses to run as root: as root every server command runs as the ``postgres`` user
(created when missing) through ``runuser``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

OWNER = "postgres"  # the OS user that owns the clusters when this runs as root
SUPERUSER = "postgres"  # the database superuser initdb creates
SETTINGS = {
    "fsync": "off", "full_page_writes": "off",  # throwaway: see the module docstring
    "max_connections": "300",  # pools of several apps per test, API workers, runners
    "wal_level": "replica", "max_wal_senders": "10", "hot_standby": "on",
    "wal_keep_size": "64MB",
    "log_min_messages": "warning", "log_connections": "off",
}
_live: list[Cluster] = []
atexit.register(lambda: destroy_all())


class ClusterError(RuntimeError):
    """A cluster command failed; the message names the command and ends with its output."""


def _run(command: Sequence[str], *, as_owner: bool = True, timeout: float = 120) -> str:
    """Run ``command`` (as the cluster owner when root), return its stdout; ClusterError."""
    full = list(command)
    if as_owner and os.geteuid() == 0:
        full = ["runuser", "-u", OWNER, "--", *full]
    done = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)  # a terminal's Ctrl-C is not the server's
    if done.returncode != 0:
        raise ClusterError(f"{' '.join(command)} exited {done.returncode}: "
                           f"{done.stdout.strip()} {done.stderr.strip()}".strip())
    return done.stdout


def bin_dir() -> Path | None:
    """The folder of ``initdb`` (PATH first, then Debian's /usr/lib/postgresql/<newest>/bin)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(versions[-1]).parent if versions else None


def ensure_installed() -> Path:
    """The server binaries' folder; installs Debian's ``postgresql`` (15 on bookworm) first
    when there is none: as root, else through sudo; ClusterError when neither is possible."""
    found = bin_dir()
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise ClusterError("PostgreSQL is not installed (no initdb) and there is no apt-get: "
                           "install PostgreSQL 15+ and put its bin folder on PATH")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise ClusterError("PostgreSQL is not installed (no initdb); installing it needs "
                               "root or sudo: apt-get install postgresql")
        prefix = ["sudo", "-n"]
    # No main cluster on 5432 left running by the package: the tests make their own.
    conf = Path("/etc/postgresql-common/createcluster.d/outcomes-tests.conf")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("pg_cluster: installing PostgreSQL from Debian's packages", file=sys.stderr)
    subprocess.run([*prefix, "mkdir", "-p", str(conf.parent)], check=True)
    subprocess.run([*prefix, "sh", "-c", f"echo 'create_main_cluster = false' > {conf}"],
                   check=True)
    subprocess.run([*prefix, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                    "postgresql"], check=True, env=env)
    found = bin_dir()
    if found is None:
        raise ClusterError("apt-get installed postgresql but no initdb was found")
    return found


def _ensure_owner() -> None:
    """As root: the ``postgres`` OS user exists (created as a system user when missing)."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", OWNER], check=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback TCP port nobody listens on now (the kernel's pick; a race is retried)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class Cluster:
    """One throwaway cluster: its data directory under ``root`` (a temporary folder the owner
    may write), listening on 127.0.0.1:``port`` and a Unix socket in ``root``; trust auth,
    superuser ``postgres``. ``create`` makes and starts one; ``destroy`` stops it and removes
    ``root``. Every call blocks until the server is up or down (``pg_ctl -w``)."""

    host = "127.0.0.1"
    user = SUPERUSER

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log = root / "server.log"
        self.bin = ensure_installed()
        _live.append(self)

    @classmethod
    def create(cls, port: int | None = None) -> Cluster:
        """initdb a new cluster in a fresh ``/tmp/pg-outcomes-*`` folder and start it on
        ``port`` (default: a free one, retried on a race). ClusterError."""
        bin_folder = ensure_installed()
        _ensure_owner()
        root = Path(tempfile.mkdtemp(prefix="pg-outcomes-"))
        if os.geteuid() == 0:
            shutil.chown(root, OWNER)
        cluster = cls(root, port or free_port())
        _run([str(bin_folder / "initdb"), "-D", str(cluster.data), "--auth=trust",
              "-U", SUPERUSER, "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(cluster.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in SETTINGS.items())
        cluster._start_on_a_free_port(retry=port is None)
        return cluster

    def _pg_ctl(self, *args: str, timeout: float = 120) -> str:
        return _run([str(self.bin / "pg_ctl"), "-D", str(self.data), *args], timeout=timeout)

    def _options(self) -> str:
        return (f"-c listen_addresses={self.host} -p {self.port} "
                f"-c unix_socket_directories={self.root}")

    def _start_on_a_free_port(self, retry: bool) -> None:
        for attempt in range(3):
            try:
                self.start()
                return
            except ClusterError:
                if not retry or attempt == 2:
                    raise
                self.port = free_port()

    def start(self) -> None:
        """Start the server and wait until it accepts connections (ClusterError)."""
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log), "-o", self._options())

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (disconnects clients, clean), ``immediate`` (like a
        crash: recovery runs at the next start)."""
        self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True).returncode == 0

    def standby(self, port: int | None = None) -> Cluster:
        """A streaming-replication standby of this (running) cluster: ``pg_basebackup -R``
        into a new folder, started on ``port`` (default: a free one). ClusterError."""
        root = Path(tempfile.mkdtemp(prefix="pg-outcomes-standby-"))
        if os.geteuid() == 0:
            shutil.chown(root, OWNER)
        replica = Cluster(root, port or free_port())
        _run([str(self.bin / "pg_basebackup"), "-h", self.host, "-p", str(self.port),
              "-U", self.user, "-D", str(replica.data), "-R", "-X", "stream",
              "--checkpoint=fast", "--no-sync"])
        replica.start()
        return replica

    def promote(self) -> None:
        """Promote this standby to a primary and wait until it accepts writes."""
        self._pg_ctl("promote", "-w", "-t", "60")

    def destroy(self) -> None:
        """Stop the server (immediately) and remove its folder; harmless twice."""
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        if self in _live:
            _live.remove(self)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def environ(self) -> dict[str, str]:
        """The variables that point the test fixtures at this cluster."""
        return {"OUTCOMES_TEST_POSTGRES_HOST": self.host,
                "OUTCOMES_TEST_POSTGRES_PORT": str(self.port),
                "OUTCOMES_TEST_POSTGRES_USER": self.user}


def destroy_all() -> None:
    """Remove every cluster this process started (at exit, and on a signal)."""
    for cluster in list(_live):
        cluster.destroy()


def run(command: Sequence[str]) -> int:
    """Start a cluster, run ``command`` with its variables, remove the cluster; the
    command's exit status (128 + n when a signal n ended it)."""
    started = time.monotonic()
    cluster = Cluster.create()
    print(f"pg_cluster: PostgreSQL on {cluster.host}:{cluster.port} in {cluster.root} "
          f"(throwaway, fsync off), started in {time.monotonic() - started:.1f} s",
          file=sys.stderr)
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        child = subprocess.Popen(list(command), env={**os.environ, **cluster.environ()})
        status = child.wait()
    finally:
        destroy_all()
    return status if status >= 0 else 128 - status


def main(argv: Sequence[str]) -> int:
    if len(argv) >= 2 and argv[0] == "run" and argv[1] == "--" and len(argv) > 2:
        return run(argv[2:])
    print("usage: pg_cluster.py run -- COMMAND [ARG...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
