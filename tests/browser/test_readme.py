"""The README's examples, run as written against a fresh `pdconnect serve` whose demo tenant
connected one sandbox service the way a new user does: the shell blocks of "Sending alerts"
run through bash and curl, and their alert pages, then resolves, in the sandbox."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Server
from tests.browser.test_connect_flow import connect_and_approve, sign_in

README = Path(__file__).resolve().parents[2] / "README.md"
README_SERVER = "http://127.0.0.1:8000"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sending_alerts_blocks() -> list[str]:
    """The ```sh blocks of the README's "Sending alerts" section, in order."""
    text = README.read_text()
    section = text.split("## Sending alerts", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def arrivals(server: Server, dedup_key: str) -> list[dict[str, Any]]:
    url = f"{server.sandbox_url}/_sandbox/events?dedup_key={dedup_key}"
    with _LOCAL.open(url, timeout=10) as response:
        events: list[dict[str, Any]] = json.load(response)["events"]
    return events


def test_the_readme_examples_work_as_written(page: Page, server: Server) -> None:
    if shutil.which("curl") is None:
        pytest.fail("the README's examples need curl (apt-get install curl)")
    blocks = sending_alerts_blocks()
    assert len(blocks) >= 2, "the README lost its sending examples"
    sign_in(page, server)
    connect_and_approve(page, server)
    page.locator("label.pick input[name=service]").first.check()
    page.locator("#save-services").click()
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("tr.service")).to_have_count(1)

    env = {**os.environ, "INGEST_KEY": server.ingest_key}
    for block in blocks:
        script = block.replace(README_SERVER, server.base_url)
        ran = subprocess.run(  # noqa: S603 - the README's own commands
            ["/bin/bash", "-euo", "pipefail", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        for answer in ran.stdout.replace("}{", "}\n{").splitlines():
            # Every curl in the README gets an acceptance, never an error.
            assert '"error"' not in answer, answer
            assert "invalid event" not in answer, answer

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = [(a["event_action"], a["status"]) for a in arrivals(server, "disk-db1")]
        if len(seen) >= 3:
            break
        time.sleep(0.2)
    assert seen == [("trigger", 202), ("resolve", 202), ("resolve", 202)]
    keys = {a["routing_key"] for a in arrivals(server, "disk-db1")}
    assert len(keys) == 1
