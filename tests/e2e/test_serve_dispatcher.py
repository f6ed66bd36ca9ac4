"""`pdconnect serve` delivers through a dispatcher of its own, a `pdconnect worker` child process:
what serve accepts reaches PagerDuty (the sandbox, over loopback), its /metrics counts the
child's deliveries beside its own requests, a child that dies is started again, and a child
whose `serve` was killed outright stops by itself."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import psutil  # type: ignore[import-untyped]
import pytest
from databases import Database
from prometheus_client.parser import text_string_to_metric_families

from app.cli.worker_child import RESTART_DELAYS
from app.crypto import new_fernet_key
from app.dispatch.worker import LISTENER_NAME
from tests.conftest import admin_headers
from tests.live_sandbox import Sandbox, app_settings
from tests.security.served import served_process

# Generous bounds on waits for something that takes well under a second; never a measure.
PATIENCE = 30.0


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    http: httpx2.AsyncClient
    sandbox: Sandbox

    def dispatchers(self) -> list[psutil.Process]:
        """This serve's `pdconnect worker` children."""
        return [
            child
            for child in psutil.Process(self.process.pid).children()
            if {"app.cli", "worker"} <= set(child.cmdline())
        ]

    async def alert(self, tenant: dict[str, Any], dedup_key: str) -> None:
        response = await self.http.post(
            "/v1/alerts",
            json={"dedup_key": dedup_key, "summary": f"{dedup_key} is down"},
            headers={"Authorization": f"Bearer {tenant['ingest_key']}"},
        )
        assert response.status_code == 202, response.text

    async def arrived(self, dedup_key: str) -> None:
        async def found() -> bool:
            page = await self.sandbox.http.get(
                f"{self.sandbox.url}/_sandbox/events", params={"dedup_key": dedup_key}
            )
            return bool(page.json()["events"])

        await until(found)


async def until(holds: Any) -> None:
    deadline = time.monotonic() + PATIENCE
    while not await holds():
        assert time.monotonic() < deadline, "not within the patience allowed"
        await asyncio.sleep(0.1)


@contextmanager
def serve(database_url: str, sandbox: Sandbox, **settings: str) -> Iterator[tuple[str, Any]]:
    with served_process(
        database_url,
        ENCRYPTION_KEYS=new_fernet_key(),
        **app_settings(sandbox.url),
        **settings,
    ) as (port, process):
        yield f"http://127.0.0.1:{port}", process


@pytest.fixture
async def served(cdb: Database, database_url: str, live: Sandbox) -> AsyncIterator[Served]:
    with serve(database_url, live, PDCONNECT_RUN_DISPATCHER="1") as (url, process):
        async with httpx2.AsyncClient(base_url=url, timeout=10.0) as http:
            yield Served(url, process, http, live)


async def connected_tenant(served: Served) -> dict[str, Any]:
    created = await served.http.post(
        "/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers()
    )
    assert created.status_code == 201, created.text
    tenant: dict[str, Any] = created.json()
    account = await served.sandbox.account("acme-corp")
    key = next(
        i["integration_key"]
        for s in account["services"]
        for i in s["integrations"]
        if i["type"] == "events_api_v2_inbound_integration"
    )
    service = await served.http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Checkout", "routing_key": key, "api": "v2"},
        headers=admin_headers(),
    )
    assert service.status_code == 201, service.text
    return tenant


async def samples(served: Served) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await served.http.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_serve_delivers_and_its_metrics_count_the_childs_deliveries(
    served: Served,
) -> None:
    assert len(served.dispatchers()) == 1
    tenant = await connected_tenant(served)
    await served.alert(tenant, "disk-db1")
    await served.arrived("disk-db1")

    async def counted() -> bool:
        found = await samples(served)
        return found.get(("pdconnect_deliveries_total", DELIVERED), 0.0) >= 1

    await until(counted)
    found = await samples(served)
    # Counted by the web process...
    assert found[("pdconnect_ingested_events_total", TRIGGER)] == 1
    # ...and by the dispatcher's, in one exposition.
    assert found[("pdconnect_time_to_page_seconds_count", frozenset())] == 1
    assert found[("pdconnect_database_up", frozenset())] == 1


DELIVERED = frozenset({("outcome", "delivered"), ("reason", "accepted")})
TRIGGER = frozenset({("source", "native"), ("action", "trigger")})


async def test_serve_answers_only_once_its_dispatcher_listens(
    cdb: Database, database_url: str, live: Sandbox
) -> None:
    with serve(database_url, live, PDCONNECT_RUN_DISPATCHER="1"):
        # served_process returned at the first answer to /healthz.
        listening = await cdb.fetch_val(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE application_name = :name AND datname = current_database()
            """,
            {"name": LISTENER_NAME},
        )
        assert listening == 1


async def test_a_dispatcher_that_dies_is_started_again(served: Served) -> None:
    tenant = await connected_tenant(served)
    [first] = served.dispatchers()
    first.send_signal(signal.SIGKILL)
    first.wait(PATIENCE)

    async def replaced() -> bool:
        return [p.pid for p in served.dispatchers()] not in ([], [first.pid])

    await until(replaced)
    await served.alert(tenant, "after-restart")
    await served.arrived("after-restart")


async def test_a_dispatcher_that_keeps_dying_is_started_again_after_longer_pauses(
    served: Served,
) -> None:
    """No restart loop hammering the database: 1 s before the first restart, 2 s before the
    second (RESTART_DELAYS). Lower bounds only: a pause is never shorter than asked."""
    pauses = []
    for _ in range(2):
        [child] = served.dispatchers()
        child.send_signal(signal.SIGKILL)
        child.wait(PATIENCE)
        died = time.monotonic()

        async def replaced(gone: int = child.pid) -> bool:
            return [p.pid for p in served.dispatchers()] not in ([], [gone])

        await until(replaced)
        pauses.append(time.monotonic() - died)
    assert pauses[0] >= RESTART_DELAYS[0]
    assert pauses[1] >= RESTART_DELAYS[1]


async def test_the_dispatcher_stops_when_serve_is_killed_outright(
    served: Served,
) -> None:
    [child] = served.dispatchers()
    served.process.send_signal(signal.SIGKILL)
    served.process.wait()
    # It notices within half a second and has no sends to finish (psutil raises if it lives on).
    child.wait(PATIENCE)
    assert not child.is_running()


async def test_serve_with_the_dispatcher_off_starts_none(
    cdb: Database, database_url: str, live: Sandbox
) -> None:
    with serve(database_url, live, PDCONNECT_RUN_DISPATCHER="0") as (_, process):
        assert not psutil.Process(process.pid).children()
