"""A throwaway pdconnect for one benchmark run: `pdconnect serve` (web app and dispatcher in one
process, as deployed by default) in sandbox mode, with the PagerDuty sandbox it starts and an
embedded PostgreSQL in a fresh data directory under /tmp, all on loopback.

`running_stack()` starts it and, however the benchmark ends, stops every process it started
(by PID) and deletes the directory. The async helpers below drive the operator API, the
sandbox's control API and, for the two things no API offers, the embedded database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import psutil  # type: ignore[import-untyped]

from app.config.load import read_env_file
from app.dispatch.worker import LISTENER_NAME
from bench.cpu import CpuMeter

CHECKOUT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 120.0  # the first start of the embedded PostgreSQL runs initdb
STOP_TIMEOUT = 30.0
SANDBOX_ACCOUNT = "acme-corp"
EVENTS_V2_INTEGRATION = "events_api_v2_inbound_integration"
# Config a developer's shell might carry that would point the benchmark at a real PagerDuty
# app or database, or override the secrets the sandbox deployment generates for itself.
SCRUBBED_NAMES = frozenset(
    {"DATABASE_URL", "BASE_URL", "SECRET_KEY", "ENCRYPTION_KEYS", "ADMIN_TOKEN"}
)
SCRUBBED_PREFIXES = ("PAGERDUTY_", "PDCONNECT_", "SANDBOX_")
# The benchmarks send from one ingest key as fast as they can, far above the per-key rate limit
# a deployment runs with. The limit stays on, its check being part of what an ingest costs, but
# out of reach (requests a second).
BENCH_INGEST_RATE_LIMIT = "1000000"


class SetupError(Exception):
    """Something the benchmark needs did not start or answered unexpectedly."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SCRUBBED_NAMES and not k.startswith(SCRUBBED_PREFIXES)
    }
    env.update(extra)
    return env


def start_process(
    args: list[str], *, env: Mapping[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            [sys.executable, *args],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_popen(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Ask a process we started to stop, then insist."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def stop_orphan(proc: Any, sig: int = signal.SIGTERM) -> None:
    """Stop a process started on our behalf (the sandbox, PostgreSQL) if its parent did not.
    psutil refuses to signal a PID that has since been reused by another process."""
    with suppress(psutil.NoSuchProcess):
        if not proc.is_running():
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            proc.kill()


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx2.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SetupError(f"{url} exited with status {process.returncode}\n{tail(log)}")
            with suppress(httpx2.TransportError):
                if http.get(url).status_code == 200:
                    return
            time.sleep(0.2)
    raise SetupError(f"{url} was not ready after {READY_TIMEOUT:.0f} s\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    root: Path
    web_port: int
    sandbox_port: int
    web: subprocess.Popen[bytes]
    admin_token: str = ""
    sandbox: Any = None  # psutil.Process of the sandbox `serve` started
    postgres: Any = None  # psutil.Process of the embedded PostgreSQL's postmaster
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # A `pdconnect worker` of its own beside a web-only `serve` (`start_worker`).
    worker: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "serve.log"

    @property
    def web_url(self) -> str:
        return f"http://{LOOPBACK}:{self.web_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{LOOPBACK}:{self.sandbox_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres:@/pdconnect?host={self.data_dir / 'postgres'}"

    @property
    def postgres_pid(self) -> int | None:
        return None if self.postgres is None else int(self.postgres.pid)

    def server_pids(self) -> dict[str, int]:
        """The processes whose memory the benchmarks report: the web app, the dispatcher
        (`serve`'s own child, or a `start_worker` worker), the sandbox."""
        pids = {"web": self.web.pid}
        if self.worker is not None:
            pids["worker"] = self.worker.pid
        else:
            dispatcher = _find_child(self.web.pid, "worker")
            if dispatcher is not None:
                pids["dispatcher"] = int(dispatcher.pid)
        if self.sandbox is not None:
            pids["sandbox"] = int(self.sandbox.pid)
        return pids

    def cpu_meter(self) -> CpuMeter:
        """CPU of the web app, its dispatcher, the sandbox and PostgreSQL (with its
        backends)."""
        pids = self.server_pids()
        if self.postgres_pid is not None:
            pids["postgres"] = self.postgres_pid
        return CpuMeter(pids, trees={"postgres"})

    def start_extra(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """Another server of the benchmark's own (the hello-world baseline), stopped with the
        stack."""
        # Run from the temp dir like `serve`; the checkout is on the path for `bench` itself.
        env = child_env({"PYTHONPATH": str(CHECKOUT)})
        process = start_process(args, env=env, cwd=self.root, log=self.root / f"{name}.log")
        self.extra.append(process)
        return process

    async def start_worker(self) -> None:
        """A `pdconnect worker` on this stack's database and data directory (its secrets), for
        a stack whose `serve` runs no dispatcher (PDCONNECT_RUN_DISPATCHER=0); stopped with the
        stack, before it. Returns once the worker's dispatcher listens for new events."""
        log = self.root / "worker.log"
        env = child_env(
            {"PDCONNECT_DATA_DIR": str(self.data_dir), "DATABASE_URL": self.database_url}
        )
        self.worker = start_process(["-m", "app.cli", "worker"], env=env, cwd=self.root, log=log)
        self.extra.append(self.worker)
        conn = await asyncpg.connect(self.database_url)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not await conn.fetchval(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = $1",
                LISTENER_NAME,
            ):
                if self.worker.poll() is not None or time.monotonic() > deadline:
                    raise SetupError(f"the worker did not start listening:\n{tail(log)}")
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    def stop(self) -> None:
        for process in self.extra:
            stop_popen(process)
        # `serve` stops its sandbox and, through pgserver, the embedded PostgreSQL on SIGTERM;
        # the orphan checks matter only if it had to be killed or died during start-up.
        if self.sandbox is None and self.web.poll() is None:
            self.sandbox = _find_sandbox(self.web.pid)
        stop_popen(self.web)
        if self.sandbox is not None:
            stop_orphan(self.sandbox)
        postgres = self.postgres or _find_postmaster(self.data_dir)
        if postgres is not None:
            stop_orphan(postgres, signal.SIGINT)  # PostgreSQL's "fast" shutdown


def _find_sandbox(web_pid: int) -> Any:
    return _find_child(web_pid, "pdsandbox")


def _find_child(web_pid: int, word: str) -> Any:
    """The child of `serve` whose command line holds `word` (pdsandbox, worker)."""
    with suppress(psutil.Error):
        for child in psutil.Process(web_pid).children():
            with suppress(psutil.Error):
                if word in child.cmdline():
                    return child
    return None


def _find_postmaster(data_dir: Path) -> Any:
    """The embedded PostgreSQL's postmaster, from its pid file; a stale file's PID that now
    belongs to some other program is not taken for it."""
    with suppress(OSError, ValueError, IndexError, psutil.Error):
        first = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()[0]
        proc = psutil.Process(int(first))
        if proc.name().startswith("postgres"):
            return proc
    return None


@contextmanager
def running_stack(settings: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """`settings`: more environment for `pdconnect serve` (PDCONNECT_… names)."""
    root = Path(tempfile.mkdtemp(prefix="pdconnect-bench-", dir="/tmp"))
    web_port, sandbox_port = free_port(), free_port()
    stack: Stack | None = None
    try:
        # cwd is the temp dir so a developer's .env in the checkout cannot leak settings in.
        web = start_process(
            ["-m", "app.cli", "serve", "--host", LOOPBACK, "--port", str(web_port),
             "--sandbox-port", str(sandbox_port)],
            env=child_env(
                {
                    "PDCONNECT_DATA_DIR": str(root / "data"),
                    "PDCONNECT_INGEST_RATE_LIMIT": BENCH_INGEST_RATE_LIMIT,
                    # A fresh sandbox, never paused to write its state.
                    "PDCONNECT_SANDBOX_STATE_FILE": "",
                    **(settings or {}),
                }
            ),
            cwd=root,
            log=root / "serve.log",
        )  # fmt: skip
        stack = Stack(root=root, web_port=web_port, sandbox_port=sandbox_port, web=web)
        wait_until_ready(f"{stack.web_url}/readyz", web, stack.log)
        stack.sandbox = _find_sandbox(web.pid)
        stack.postgres = _find_postmaster(stack.data_dir)
        secrets = read_env_file(stack.data_dir / "sandbox-secrets.env")
        if "ADMIN_TOKEN" not in secrets:
            raise SetupError("no ADMIN_TOKEN in the data directory's sandbox-secrets.env")
        stack.admin_token = secrets["ADMIN_TOKEN"]
        yield stack
    finally:
        if stack is not None:
            stack.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- the operator API, the sandbox, the database ---------------------------------------------


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    ingest_key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ingest_key}"}


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    routing_key: str


def _json(response: httpx2.Response, expected: int, what: str) -> dict[str, Any]:
    if response.status_code != expected:
        raise SetupError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


async def create_tenant(http: httpx2.AsyncClient, stack: Stack, name: str) -> Tenant:
    response = await http.post(
        f"{stack.web_url}/admin/v1/tenants",
        json={"name": name},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    body = _json(response, 201, "creating a tenant")
    return Tenant(id=str(body["id"]), name=name, ingest_key=str(body["ingest_key"]))


async def add_service(
    http: httpx2.AsyncClient, stack: Stack, tenant: Tenant, name: str, routing_key: str
) -> Service:
    response = await http.post(
        f"{stack.web_url}/admin/v1/tenants/{tenant.id}/services",
        json={"name": name, "routing_key": routing_key, "api": "v2"},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    body = _json(response, 201, "adding a service")
    return Service(id=str(body["id"]), name=name, routing_key=routing_key)


async def sandbox_routing_keys(http: httpx2.AsyncClient, stack: Stack, count: int) -> list[str]:
    """`count` distinct Events API v2 integration keys of the sandbox's seeded account."""
    response = await http.get(f"{stack.sandbox_url}/_sandbox/accounts/{SANDBOX_ACCOUNT}")
    account = _json(response, 200, "reading the sandbox account")
    keys = [
        str(integration["integration_key"])
        for service in account["services"]
        for integration in service["integrations"]
        if integration["type"] == EVENTS_V2_INTEGRATION
    ]
    keys = list(dict.fromkeys(keys))
    if len(keys) < count:
        raise SetupError(f"the sandbox has {len(keys)} Events API v2 keys; {count} are needed")
    return keys[:count]


async def set_sandbox_rate_limit(http: httpx2.AsyncClient, stack: Stack, per_minute: int) -> None:
    response = await http.post(
        f"{stack.sandbox_url}/_sandbox/control", json={"default_rate_limit": per_minute}
    )
    _json(response, 200, "setting the sandbox's rate limit")


async def set_sandbox_key_limits(
    http: httpx2.AsyncClient, stack: Stack, routing_keys: Iterable[str], per_minute: int
) -> None:
    """Raise the sandbox's Events API limit for these keys only (the others keep 120/min)."""
    response = await http.post(
        f"{stack.sandbox_url}/_sandbox/control",
        json={"rate_limits": dict.fromkeys(routing_keys, per_minute)},
    )
    _json(response, 200, "setting the sandbox's per-key rate limits")


async def set_budget(stack: Stack, services: Iterable[Service], per_minute: int) -> None:
    """Raise services' dispatch budgets. The operator API has no field for
    `rate_limit_per_minute`, so this writes the column directly."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            "UPDATE pd_services SET rate_limit_per_minute = $1 WHERE id = ANY($2::uuid[])",
            per_minute,
            [s.id for s in services],
        )
    finally:
        await conn.close()


async def outbox_counts(stack: Stack, tenant: Tenant) -> dict[str, int]:
    """The tenant's events by outbox status (queued, sending, delivered, …). Read-only."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, count(*) AS n FROM events WHERE tenant_id = $1::uuid GROUP BY status",
            tenant.id,
        )
    finally:
        await conn.close()
    return {str(r["status"]): int(r["n"]) for r in rows}


def alert(dedup_key: str, *, service: str | None = None, summary: str = "") -> dict[str, Any]:
    """One alert in pdconnect's native format, with a dedup key of our choosing so its
    arrival at the sandbox can be recognised."""
    body: dict[str, Any] = {
        "dedup_key": dedup_key,
        "summary": summary or f"bench alert {dedup_key}",
        "severity": "warning",
        "source": "bench",
    }
    if service is not None:
        body["service"] = service
    return body
