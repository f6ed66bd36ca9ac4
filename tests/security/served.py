"""`pdconnect serve` as a user runs it: a real uvicorn in a subprocess on loopback, on the test
database, with an OAuth app configured (so no sandbox) and no dispatcher. And `serving`: any
ASGI app under a real uvicorn in the test's own event loop, for tests of the HTTP protocol."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from starlette.types import ASGIApp

from app.crypto import new_fernet_key
from tests.conftest import ADMIN_TOKEN
from tests.ports import free_port

READY_TIMEOUT = 60.0
# Bounds the wait for an in-process server to start; never a measure of speed.
START_PATIENCE = 30.0


@asynccontextmanager
async def serving(app: ASGIApp, **config: Any) -> AsyncIterator[int]:
    """`app` under uvicorn on a free loopback port (yielded) in this event loop, with these
    `uvicorn.Config` settings (its `http` protocol among them); stopped on the way out."""
    settings: dict[str, Any] = {"lifespan": "off", "log_level": "warning", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, **settings))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(START_PATIENCE):
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
    try:
        port: int = server.servers[0].sockets[0].getsockname()[1]
        yield port
    finally:
        server.should_exit = True
        await task


@contextmanager
def pdconnect_serve(database_url: str, **settings: str) -> Iterator[int]:
    """The port of the server, with `settings` added to its environment; stopped with Ctrl-C
    (SIGINT) on the way out."""
    with served_process(database_url, **settings) as (port, _):
        yield port


@contextmanager
def served_process(
    database_url: str, *args: str, **settings: str
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The port and the process of the server (for a test that kills it); stopped with Ctrl-C
    (SIGINT) on the way out if it is still running. `args`: more of serve's command line."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="pdc-serve-", dir="/tmp"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PAGERDUTY_", "PDCONNECT_", "SANDBOX_", "DATABASE_URL", "BASE_URL"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "BASE_URL": f"http://127.0.0.1:{port}",
            "SECRET_KEY": "s" * 48,
            "ENCRYPTION_KEYS": new_fernet_key(),
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "PAGERDUTY_CLIENT_ID": "test-client",
            "PAGERDUTY_CLIENT_SECRET": "test-client-secret-0123456789",
            "PDCONNECT_DATA_DIR": str(folder / "data"),
            "PDCONNECT_RUN_DISPATCHER": "0",
            **settings,
        }
    )
    log = (folder / "serve.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
        env=env,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_ready(port, process, folder / "serve.log")
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx2.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                if http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
    raise AssertionError("pdconnect serve did not start:\n" + log.read_text(errors="replace"))
