"""A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1, with a
config and storage of the test's own and clustering off, stopped by its PID when done."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from bench.stack import free_port
from tests.contract.tls import LOOPBACK

BINARY = os.environ.get("ALERTMANAGER", "/usr/bin/prometheus-alertmanager")
# CI sets this: there a missing Alertmanager is a failure, not a skip.
REQUIRED = "PDCONNECT_REQUIRE_ALERTMANAGER"
READY_SECONDS = 30.0
STOP_SECONDS = 10.0


def find_binary() -> str:
    if Path(BINARY).exists():
        return BINARY
    message = f"Alertmanager is needed at {BINARY} (apt-get install prometheus-alertmanager)"
    if os.environ.get(REQUIRED):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def alert(labels: dict[str, str], *, resolved: bool = False) -> dict[str, Any]:
    """An alert as a Prometheus posts it; `resolved` ends it a second ago."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": {"description": f"{labels['alertname']} from the contract test"},
        "generatorURL": f"http://{LOOPBACK}:9090/graph",
    }
    if resolved:
        body["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    return body


def _wait_until_ready(manager: Alertmanager) -> None:
    deadline = time.monotonic() + READY_SECONDS
    with httpx2.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if manager.process.poll() is not None:
                raise AssertionError(f"Alertmanager exited:\n{manager.log_tail()}")
            try:
                if http.get(f"{manager.url}/-/ready").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"Alertmanager was not ready:\n{manager.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_alertmanager(executable: str, config: dict[str, Any]) -> Iterator[Alertmanager]:
    """Alertmanager with this configuration (JSON is YAML, so it is written as JSON)."""
    folder = Path(tempfile.mkdtemp(prefix="pdc-am-", dir="/tmp"))
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    (folder / "alertmanager.yml").write_text(json.dumps(config, indent=2))
    log = folder / "alertmanager.log"
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - a fixed binary, our own arguments
                [
                    executable,
                    f"--config.file={folder / 'alertmanager.yml'}",
                    f"--storage.path={folder / 'data'}",
                    f"--web.listen-address={LOOPBACK}:{port}",
                    f"--web.external-url={url}",
                    "--cluster.listen-address=",  # no cluster: no gossip port, no peer wait
                    "--log.level=debug",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )
        manager = Alertmanager(url=url, process=process, log=log)
        try:
            _wait_until_ready(manager)
            yield manager
        finally:
            _stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
