"""`pdconnect sandbox` runs the PagerDuty sandbox, a separate distribution (pdconnect's
`sandbox` extra), as a process of its own; without it installed it says how to install it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx2

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_without_the_sandbox_installed_it_says_how_to_install_it(tmp_path: Path) -> None:
    # `-S` skips site-packages' .pth files, among them the editable installs' finders: the
    # checkout and the installed libraries are on the path, the sandbox (sandbox/) is not.
    libraries = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *sorted(libraries)])
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-S", "-m", "app.cli", "sandbox", "--port", str(free_port())],
        env={**env, "PDCONNECT_DATA_DIR": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert "pip install -e ./sandbox" in line
    assert "make run" in line


def test_it_runs_the_sandbox(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-m", "app.cli", "sandbox", "--port", str(port)],
        env={**env, "PDCONNECT_DATA_DIR": str(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the sandbox exited"
            try:
                answer = httpx2.get(f"http://127.0.0.1:{port}/_sandbox/control", timeout=2)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.2)
        assert answer.status_code == 200
        discovery = "/identity/global/oauth/anonymous/.well-known/openid-configuration"
        config = httpx2.get(f"http://127.0.0.1:{port}{discovery}", timeout=5).json()
        # Its own address by default, as `pdconnect sandbox` always gave it.
        assert config["issuer"].startswith(f"http://127.0.0.1:{port}/")
    finally:
        process.terminate()
        # `pdconnect sandbox` became the sandbox: the signal reaches uvicorn itself, which
        # stops, leaving no child process behind.
        process.wait(timeout=15)
