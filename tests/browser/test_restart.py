"""`make run`, Ctrl-C, `make run` again: the demo tenant's connection still delivers, because
the sandbox keeps its state in the data directory as pdconnect keeps its own."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, _start_server, _stop
from tests.browser.test_connect_flow import connect_and_approve, sign_in

_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def send(server: Server, key: str, dedup_key: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{server.base_url}/v1/alerts",
        data=json.dumps({"dedup_key": dedup_key, "summary": "Disk full on db1"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with _LOCAL.open(request, timeout=10) as response:
        return int(response.status)


def arrivals(server: Server, dedup_key: str) -> list[dict[str, Any]]:
    url = f"{server.sandbox_url}/_sandbox/events?dedup_key={dedup_key}"
    with _LOCAL.open(url, timeout=10) as response:
        events: list[dict[str, Any]] = json.load(response)["events"]
    return events


def delivered(server: Server, dedup_key: str) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = [a["status"] for a in arrivals(server, dedup_key)]
        if statuses:
            return statuses
        time.sleep(0.2)
    return []


def ports_of(server: Server) -> tuple[int, int]:
    return (int(server.base_url.rsplit(":", 1)[1]), int(server.sandbox_url.rsplit(":", 1)[1]))


def test_the_demo_still_delivers_after_a_restart(page: Page) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="pdc-r-", dir="/tmp"))
    try:
        first = _start_server(data_dir)
        try:
            key = first.ingest_key
            sign_in(page, first)
            connect_and_approve(page, first)
            page.locator("label.pick input[name=service]").first.check()
            page.locator("#save-services").click()
            page.wait_for_url(f"{first.base_url}/settings")
            expect(page.locator("tr.service")).to_have_count(1)
            assert send(first, key, "before-restart") == 202
            assert delivered(first, "before-restart") == [202]
        finally:
            _stop(first.process)
        # The same ports, as `make run` always uses.
        second = _start_server(data_dir, ports=ports_of(first))
        try:
            assert send(second, key, "after-restart") == 202
            # The sandbox still knows the integration the connection made: accepted, not
            # "Invalid routing key".
            assert delivered(second, "after-restart") == [202]
        finally:
            _stop(second.process)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
