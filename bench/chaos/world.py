"""What every scenario of a chaos run shares: our own PostgreSQL (bench.chaos.postgres), the
PagerDuty sandbox as its own `pdconnect sandbox` process, and the settings every pdconnect
process of the run is started with (one database, so one set of keys).

The sandbox is told to accept routing keys it does not know: each scenario makes up fresh
keys (more than the seeded account has), so no scenario inherits another's rate windows. The
sandbox's per-key rate limit (120 events a minute) still applies to them.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import sys
import tempfile
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2

from app.crypto import new_fernet_key
from bench.chaos.postgres import Postgres, throwaway_postgres
from bench.stack import LOOPBACK, STOP_TIMEOUT, SetupError, child_env, free_port

PDCONNECT = Path(sys.executable).with_name("pdconnect")
READY_TIMEOUT = 60.0
CLIENT_ID = "pdconnect-chaos"


@dataclass(frozen=True)
class RunSettings:
    # Cap of the dispatcher's retry backoff: after a long outage, the drain waits at most
    # about this long for the last retries to fall due.
    retry_cap_seconds: float = 60.0


@dataclass
class World:
    root: Path
    postgres: Postgres
    sandbox_url: str
    sandbox: Process
    env: dict[str, str]  # of every pdconnect process
    http: httpx2.AsyncClient

    @property
    def admin_token(self) -> str:
        return self.env["ADMIN_TOKEN"]

    async def sandbox_call(self, method: str, path: str, body: object = None) -> object:
        response = await self.http.request(method, f"{self.sandbox_url}{path}", json=body)
        if response.status_code != 200:
            raise SetupError(f"sandbox {method} {path}: HTTP {response.status_code}")
        return response.json()


def pdconnect_env(
    root: Path, database_url: str, sandbox_url: str, run: RunSettings
) -> dict[str, str]:
    return child_env(
        {
            "DATABASE_URL": database_url,
            "PDCONNECT_DATA_DIR": str(root / "data"),
            "SECRET_KEY": secrets.token_urlsafe(36),
            "ENCRYPTION_KEYS": new_fernet_key(),
            "ADMIN_TOKEN": secrets.token_urlsafe(24),
            # A PagerDuty app is configured, so `serve` starts no sandbox of its own.
            "PAGERDUTY_CLIENT_ID": CLIENT_ID,
            "PAGERDUTY_CLIENT_SECRET": secrets.token_urlsafe(24),
            "PAGERDUTY_IDENTITY_URL": f"{sandbox_url}/identity",
            "PAGERDUTY_API_URL": f"{sandbox_url}/{{region}}/api",
            "PAGERDUTY_EVENTS_URL": f"{sandbox_url}/{{region}}/events",
            "PAGERDUTY_APP_URL": f"{sandbox_url}/app",
            # The load is many requests a second per ingest key, on purpose.
            "PDCONNECT_INGEST_RATE_LIMIT": "0",
            "PDCONNECT_RETRY_CAP_SECONDS": str(run.retry_cap_seconds),
        }
    )


async def _wait_for_sandbox(http: httpx2.AsyncClient, url: str, process: Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT
    while loop.time() < deadline:
        if process.returncode is not None:
            raise SetupError(f"the sandbox exited with status {process.returncode}")
        try:
            if (await http.get(f"{url}/_sandbox/control")).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise SetupError(f"the sandbox was not ready after {READY_TIMEOUT:.0f} s")


@asynccontextmanager
async def running_world(run: RunSettings) -> AsyncIterator[World]:
    root = Path(tempfile.mkdtemp(prefix="pdconnect-chaos-", dir="/tmp"))
    sandbox: Process | None = None
    try:
        with throwaway_postgres(free_port()) as postgres:
            port = free_port()
            sandbox_url = f"http://{LOOPBACK}:{port}"
            with (root / "sandbox.log").open("ab") as log:
                sandbox = await asyncio.create_subprocess_exec(
                    PDCONNECT,
                    "sandbox",
                    "--port",
                    str(port),
                    env=child_env({}),
                    cwd=root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200)
            async with httpx2.AsyncClient(timeout=30.0, limits=limits) as http:
                await _wait_for_sandbox(http, sandbox_url, sandbox)
                world = World(
                    root=root,
                    postgres=postgres,
                    sandbox_url=sandbox_url,
                    sandbox=sandbox,
                    env=pdconnect_env(root, postgres.url, sandbox_url, run),
                    http=http,
                )
                await world.sandbox_call(
                    "POST", "/_sandbox/control", {"unknown_key_response": "accept"}
                )
                yield world
    finally:
        if sandbox is not None and sandbox.returncode is None:
            sandbox.terminate()
            try:
                await asyncio.wait_for(sandbox.wait(), STOP_TIMEOUT)
            except TimeoutError:
                sandbox.kill()
                await sandbox.wait()
        shutil.rmtree(root, ignore_errors=True)
