"""A PostgreSQL cluster of our own, for runs that stop and start the database.

The embedded server `pdconnect serve` starts cannot be restarted under a running pdconnect,
and the machine's system server is not ours to stop. So a throwaway cluster is made from the
binaries the `pgserver` package ships: initdb in a temp dir, `pg_ctl start` listening on
127.0.0.1 on a free port, so that a restart keeps the same DATABASE_URL. As root, PostgreSQL
refuses to run; it then runs as pgserver's own system user, as pgserver itself does.

`kill()` is SIGKILL of the postmaster and of every process it started (a lost node, or a
container killed: no shutdown, no goodbye to clients; recovery on the next start); `freeze()`
and `thaw()` are SIGSTOP and SIGCONT of the same processes (a paused VM or container: sockets
stay open and nothing answers). Only the processes of this cluster, by PID.

`throwaway_postgres()` stops the server and deletes the directory however the run ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

with warnings.catch_warnings():
    # pgserver warns on import when XDG_RUNTIME_DIR is unset, which is normal on servers.
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

LOOPBACK = "127.0.0.1"
DATABASE = "pdconnect"
SYSTEM_USER = "pgserver"  # the user pgserver runs PostgreSQL as when we are root
PG_CTL_TIMEOUT = 60.0
GONE_TIMEOUT = 30.0  # for killed processes to be reaped
# Several web and worker processes each keep a pool; the default 100 is too tight for four.
SERVER_OPTIONS = "-c max_connections=400 -c unix_socket_directories=''"


class PostgresError(Exception):
    """The cluster did not initialise, start or stop; the message carries its log."""


@dataclass
class Postgres:
    root: Path
    port: int
    user: str | None  # the system user PostgreSQL runs as, None for ourselves

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> None:
        command = [str(POSTGRES_BIN_PATH / args[0]), *args[1:]]
        result = subprocess.run(  # noqa: S603 - PostgreSQL's own binaries
            command,
            user=self.user,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PG_CTL_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresError(f"{args[0]} failed:\n{result.stderr}\n{self._log()}")

    def _log(self) -> str:
        with suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        return ""

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "--auth=trust", "--encoding=utf8", "-U", "postgres"
        )

    def start(self) -> None:
        options = f"-h {LOOPBACK} -p {self.port} {SERVER_OPTIONS}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash as far as clients can tell: no goodbye, recovery on start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def processes(self) -> list[Any]:
        """The postmaster (first) and every process it started, by its pid file."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            postmaster = psutil.Process(pid)
            if not postmaster.name().startswith("postgres"):
                return []  # a stale file's PID, now some other program's
            return [postmaster, *postmaster.children(recursive=True)]
        except (OSError, ValueError, IndexError, psutil.Error):
            return []

    def kill(self) -> int:
        """SIGKILL to the whole server; returns how many processes it hit. The pid file
        stays, as after any crash; `start()` recovers."""
        victims = self.processes()
        if not victims:
            raise PostgresError("no running postmaster to kill")
        for proc in victims:
            with suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + GONE_TIMEOUT
        for proc in victims:
            # Children of the postmaster are reaped by init once it is gone.
            with suppress(psutil.Error):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        return len(victims)

    def freeze(self) -> list[Any]:
        """SIGSTOP to the whole server; give the list back to `thaw()`."""
        frozen = self.processes()
        if not frozen:
            raise PostgresError("no running postmaster to freeze")
        for proc in frozen:
            with suppress(psutil.Error):
                proc.send_signal(signal.SIGSTOP)
        return frozen

    @staticmethod
    def thaw(frozen: list[Any]) -> None:
        for proc in frozen:
            with suppress(psutil.Error):
                proc.send_signal(signal.SIGCONT)

    def create_database(self) -> None:
        self._run("createdb", "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", DATABASE)


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


@contextmanager
def throwaway_postgres(port: int) -> Iterator[Postgres]:
    """A fresh cluster with an empty `pdconnect` database, listening on 127.0.0.1:`port`."""
    root = Path(tempfile.mkdtemp(prefix="pdconnect-pg-", dir="/tmp"))
    postgres = Postgres(root=root, port=port, user=_system_user())
    try:
        if postgres.user is not None:
            root.chmod(0o755)
            ensure_prefix_permissions(root)
            entry = pwd.getpwnam(postgres.user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        postgres.init()
        postgres.start()
        postgres.create_database()
        yield postgres
    finally:
        if postgres.running():
            with suppress(PostgresError, subprocess.TimeoutExpired):
                postgres.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
