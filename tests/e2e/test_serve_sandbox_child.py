"""`pdconnect serve` with no PagerDuty app runs the sandbox as a child: a serve killed outright
(SIGKILL, the OOM killer) leaves no sandbox behind holding its port for the next start."""

from __future__ import annotations

import signal

import psutil  # type: ignore[import-untyped]
from databases import Database

from tests.ports import free_port, listening
from tests.security.served import served_process

# Bounds on waits for what takes about a second; never a speed measure.
PATIENCE = 30.0


async def test_the_sandbox_stops_when_serve_is_killed_outright(
    cdb: Database, database_url: str
) -> None:
    sandbox_port = free_port()
    with served_process(
        database_url, "--sandbox-port", str(sandbox_port), PDCONNECT_SANDBOX="1"
    ) as (_, process):
        [sandbox] = [
            child
            for child in psutil.Process(process.pid).children()
            if "pdsandbox" in child.cmdline()
        ]
        try:
            assert listening(sandbox_port)
            process.send_signal(signal.SIGKILL)
            process.wait()
            # psutil raises TimeoutExpired should the sandbox live on.
            sandbox.wait(PATIENCE)
        finally:
            if sandbox.is_running():
                sandbox.kill()
    assert not listening(sandbox_port), "the sandbox's port is still held"
