"""Browser tests: a real `pdconnect serve` in a subprocess, driven by Chromium.

The server runs exactly as a new user runs it: no settings, its own data directory (so its own
embedded PostgreSQL), the sandbox started beside it. The sign-in link it prints is the way in.
These tests use Playwright's sync API and run in their own pytest process (see Makefile).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
INGEST_KEY_LINE = re.compile(r"ingest key \(shown once\): (pdc_\S+)")
SIGN_IN_LINE = re.compile(r"Sign in to the demo tenant's settings page: (\S+)")
# Without these, Chromium keeps trying to reach Google's services, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    base_url: str
    sandbox_url: str
    process: subprocess.Popen[str]
    sign_in_url: str
    output: list[str] = field(default_factory=list)

    @property
    def ingest_key(self) -> str:
        """The demo tenant's ingest key, printed once at its first start."""
        for line in self.output:
            match = INGEST_KEY_LINE.search(line)
            if match:
                return match.group(1)
        raise AssertionError("the server printed no ingest key")


def _start_server(data_dir: Path, ports: tuple[int, int] | None = None) -> Server:
    """`ports`: the server's and its sandbox's (a restart keeps them, as `make run` does)."""
    port, sandbox_port = ports or (free_port(), free_port())
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PAGERDUTY_", "DATABASE_URL", "BASE_URL"))
    }
    env["PDCONNECT_DATA_DIR"] = str(data_dir)
    process = subprocess.Popen(  # noqa: S603 - our own command
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=data_dir,
    )
    output: list[str] = []
    found: list[str] = []
    ready = threading.Event()
    # The sandbox beside the server is a Uvicorn process too and reports first: wait for ours.
    listening = f"Uvicorn running on http://127.0.0.1:{port} "

    heard: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = SIGN_IN_LINE.search(line)
            if match:
                found.append(match.group(1))
            if listening in line:
                heard.append(line)
            # The sign-in link comes once the server listens: ready when both are out.
            if found and heard:
                ready.set()
        # The pipe is at its end once the server and its sandbox have exited: this thread,
        # its only reader, closes it.
        process.stdout.close()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(60) or not found or process.poll() is not None:
        _stop(process)
        raise RuntimeError("pdconnect serve did not start:\n" + "".join(output))
    return Server(
        base_url=f"http://127.0.0.1:{port}",
        sandbox_url=f"http://127.0.0.1:{sandbox_port}",
        process=process,
        sign_in_url=found[0],
        output=output,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a user stops it: the server then stops its sandbox and embedded PostgreSQL
    (a SIGKILL would leave both running)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def server() -> Iterator[Server]:
    data_dir = Path(tempfile.mkdtemp(prefix="pdc-b-", dir="/tmp"))
    try:
        srv = _start_server(data_dir)
        try:
            yield srv
        finally:
            _stop(srv.process)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is required at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def wait_until(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
