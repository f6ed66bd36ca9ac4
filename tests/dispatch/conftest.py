"""Dispatcher tests: a committed database (the dispatcher runs concurrent transactions and
listens for NOTIFY, which a rolled-back test transaction cannot give it), cleaned after each
test, and PagerDuty's Events API played by a MockTransport that records what arrived."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx2
import pytest
from databases import Database

from app.crypto import Hasher, Vault, new_fernet_key
from app.dispatch.policy import DispatchConfig
from app.dispatch.worker import Dispatcher
from app.installations import store as installations
from app.outbox.events import NewEvent, enqueue
from app.tenants import store as tenants

EVENTS_URL = "https://events.pagerduty.test"
EU_EVENTS_URL = "https://events.eu.pagerduty.test"
FAST = DispatchConfig(
    concurrency=8,
    retry_base=timedelta(milliseconds=50),
    retry_cap=timedelta(milliseconds=200),
    rate_limited_base=timedelta(milliseconds=100),
    rate_limited_cap=timedelta(milliseconds=300),
    poll_interval=timedelta(milliseconds=100),
    lease=timedelta(seconds=5),
)


@dataclass
class FakePagerDuty:
    """Answers by a script, consumed per routing key; otherwise as PagerDuty accepts (202 for
    v2, 200 for v1)."""

    answers: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    on_request: Callable[[dict[str, Any]], None] | None = None

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        key = body.get("routing_key") or body.get("service_key")
        self.received.append({**body, "_path": request.url.path})
        self.times.append(time.monotonic())
        if self.on_request:
            self.on_request(body)
        script = self.answers.get(key, [])
        ok = {"status": "success", "message": "Event processed"}
        if script:
            status, answer = script.pop(0)
        elif request.url.path.endswith("create_event.json"):
            status, answer = 200, {**ok, "incident_key": body.get("incident_key")}
        else:
            status, answer = 202, {**ok, "dedup_key": body.get("dedup_key")}
        if status == -1:
            raise httpx2.ReadTimeout("timed out", request=request)
        return httpx2.Response(status, json=answer)


@dataclass
class World:
    db: Database
    vault: Vault
    hasher: Hasher
    pd: FakePagerDuty
    http: httpx2.AsyncClient

    async def tenant(self, name: str = "T") -> UUID:
        t = await tenants.insert_tenant(self.db, name=name, external_id=None)
        assert t is not None
        return t.id

    async def service(
        self,
        tenant_id: UUID,
        key: str,
        *,
        api: str = "v2",
        limit: int = 120,
        events_url: str = EVENTS_URL,
    ) -> tuple[UUID, str]:
        region = "eu" if events_url == EU_EVENTS_URL else "us"
        inst = await installations.upsert_keyed_installation(
            self.db,
            tenant_id=tenant_id,
            method="manual",
            account_key="manual" if region == "us" else f"manual-{region}",
            subdomain=None,
            account_name=None,
            region=region,
            events_url=events_url,
        )
        svc = await installations.insert_manual_service(
            self.db,
            tenant_id=tenant_id,
            installation_id=inst.id,
            name=f"svc {key[:6]}",
            kind="manual",
            api_version=api,
            routing_key_enc=self.vault.encrypt(key),
            routing_key_hash=self.hasher.digest(key),
        )
        assert svc is not None
        await self.db.execute(
            "UPDATE pd_services SET rate_limit_per_minute = :n WHERE id = :id",
            {"n": limit, "id": svc.id},
        )
        return svc.id, self.hasher.digest(key)

    async def send(
        self,
        tenant_id: UUID,
        service: tuple[UUID, str],
        dedup_key: str | None,
        *,
        kind: str = "trigger",
        api: str = "v2",
        n: int = 1,
        summary: str = "s",
    ) -> list[UUID]:
        events = [
            NewEvent(
                tenant_id=tenant_id,
                service_id=service[0],
                routing_key_hash=service[1],
                dedup_key=dedup_key,
                kind=kind,
                api=api,
                body={
                    "event_action": kind,
                    "dedup_key": dedup_key,
                    "payload": {"summary": f"{summary}{i}", "source": "t", "severity": "error"},
                },
                notes=(),
                source="test",
            )
            for i in range(n)
        ]
        async with self.db.transaction():
            created = await enqueue(self.db, events)
        return [c[0] for c in created]

    async def wait_all(self, events: list[UUID], status: str) -> None:
        async def done() -> bool:
            count = await self.db.fetch_val(
                "SELECT count(*) FROM events WHERE id = ANY(:ids) AND status = :status",
                {"ids": events, "status": status},
            )
            return int(count) == len(events)

        await self.wait_for(done)

    def dispatcher(self, database_url: str, config: DispatchConfig = FAST) -> Dispatcher:
        return Dispatcher(
            db=self.db, http=self.http, vault=self.vault, database_url=database_url, config=config
        )

    async def status(self, event_id: UUID) -> str:
        return str(
            await self.db.fetch_val("SELECT status FROM events WHERE id = :id", {"id": event_id})
        )

    async def wait_for(self, predicate: Callable[[], Any], within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("condition not met in time")


@pytest.fixture
async def world(cdb: Database) -> AsyncIterator[World]:
    pd = FakePagerDuty()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(pd.handler)) as http:
        yield World(
            db=cdb,
            vault=Vault((new_fernet_key().encode(),)),
            hasher=Hasher("x" * 40, "routing-key"),
            pd=pd,
            http=http,
        )


class Running:
    """A dispatcher running in the background for the length of a `with` block."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.dispatcher.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=20)
