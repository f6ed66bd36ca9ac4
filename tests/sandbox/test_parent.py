"""A sandbox started with `--parent PID` stops once that process is gone, as `pdconnect serve`
starts it: a serve killed outright leaves no sandbox holding its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from tests.ports import free_port, listening

# Bounds on waits for what takes about a second; never a speed measure.
PATIENCE = 30.0
SANDBOX_ROOT = Path(__file__).resolve().parents[2] / "sandbox"

# The parent: starts the sandbox with its own PID as `--parent`, says the sandbox's PID, then
# waits to be killed.
PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-m", "pdsandbox", "--port", sys.argv[1], "--parent", str(os.getpid())]
)
print(child.pid, flush=True)
time.sleep(600)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDBOX_", "PDSANDBOX_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SANDBOX_ROOT), env.get("PYTHONPATH")]))
    return env


def _wait_listening(port: int, sandbox: psutil.Process) -> None:
    deadline = time.monotonic() + PATIENCE
    while not listening(port):
        assert sandbox.is_running(), "the sandbox exited before it listened"
        assert time.monotonic() < deadline, "the sandbox never listened"
        time.sleep(0.05)


def test_a_sandbox_stops_when_the_process_that_started_it_is_killed_outright() -> None:
    port = free_port()
    parent = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", PARENT, str(port)],
        env=_env(),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert parent.stdout is not None
        sandbox = psutil.Process(int(parent.stdout.readline()))
        _wait_listening(port, sandbox)

        parent.send_signal(signal.SIGKILL)
        parent.wait(PATIENCE)
        # psutil raises TimeoutExpired should the sandbox live on.
        sandbox.wait(PATIENCE)
        assert not sandbox.is_running()
        assert not listening(port), "the port is still held"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_a_sandbox_whose_parent_is_another_process_refuses_to_start() -> None:
    """A wrong PID would have it stop at once, or never: it says so instead."""
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "pdsandbox", "--port", str(free_port()), "--parent", "1"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert done.returncode == 2
    assert "--parent 1 is not this process's parent" in done.stderr


def test_a_sandbox_with_a_parent_still_stops_on_sigterm() -> None:
    """The watch does not keep a sandbox from stopping the usual way (serve's own stop)."""
    port = free_port()
    sandbox = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "pdsandbox", "--port", str(port), "--parent", str(os.getpid())],
        env=_env(),
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, psutil.Process(sandbox.pid))
        sandbox.send_signal(signal.SIGTERM)
        # Uvicorn stops gracefully, then ends by the signal it was stopped with.
        assert sandbox.wait(PATIENCE) == -signal.SIGTERM
    finally:
        if sandbox.poll() is None:
            sandbox.kill()
            sandbox.wait()
