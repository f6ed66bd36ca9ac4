"""The delivery history says how far back it goes: the settings page's deliveries, each event's
page and `GET /v1/events` follow PDCONNECT_RETENTION_DAYS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx2
import pytest
from databases import Database

from app import openapi
from app.deps import Deps, new_http_client
from app.main import create_app
from app.outbox.events import NewEvent, enqueue
from app.outbox.states import EventStatus
from tests.conftest import BASE_URL, FakeClock, admin_headers, make_settings


@pytest.fixture(params=["30", "1", "0"])
async def app_client(
    request: pytest.FixtureRequest, db: Database, clock: FakeClock
) -> AsyncIterator[tuple[httpx2.AsyncClient, int]]:
    days = str(request.param)
    config = make_settings(PDCONNECT_RETENTION_DAYS=days)
    http = new_http_client()
    deps = Deps(config=config, db=db, http=http, clock=clock)
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    try:
        async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client, int(days)
    finally:
        await http.aclose()


async def _tenant(client: httpx2.AsyncClient) -> dict[str, Any]:
    created = await client.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    assert created.status_code == 201
    tenant: dict[str, Any] = created.json()
    return tenant


def _said(days: int) -> str:
    if days == 0:
        return "History is kept indefinitely."
    return f"History is kept for {days} day{'s' if days > 1 else ''}:"


async def test_the_events_api_says_how_many_days_it_keeps(
    app_client: tuple[httpx2.AsyncClient, int],
) -> None:
    client, days = app_client
    tenant = await _tenant(client)
    response = await client.get(
        "/v1/events", headers={"Authorization": f"Bearer {tenant['ingest_key']}"}
    )
    assert response.status_code == 200
    assert response.json()["retention_days"] == (days or None)
    # The fields callers read before are unchanged.
    assert response.json()["events"] == []
    assert response.json()["next_before"] is None


async def test_the_settings_pages_say_how_far_back_the_history_goes(
    app_client: tuple[httpx2.AsyncClient, int], db: Database
) -> None:
    client, days = app_client
    tenant = await _tenant(client)
    link = await client.post(
        f"/admin/v1/tenants/{tenant['id']}/login-links", headers=admin_headers()
    )
    assert (await client.get(link.json()["url"])).status_code == 303

    page = await client.get("/settings")
    assert page.status_code == 200
    deliveries = page.text.split('id="deliveries"', 1)[1].split("</section>", 1)[0]
    assert _said(days) in deliveries

    [(event_id, _)] = await enqueue(
        db,
        [
            NewEvent(
                tenant_id=UUID(tenant["id"]),
                service_id=None,
                routing_key_hash=None,
                dedup_key="disk-db1",
                kind="resolve",
                api="v2",
                body={"event_action": "resolve"},
                notes=(),
                source="test",
                status=EventStatus.SKIPPED,
                reason="nothing to resolve",
            )
        ],
    )
    event_page = await client.get(f"/settings/events/{event_id}")
    assert event_page.status_code == 200
    assert _said(days) in event_page.text


def test_the_openapi_document_states_the_history_depth() -> None:
    document: dict[str, Any] = openapi.document()
    listing = document["paths"]["/v1/events"]["get"]
    assert "PDCONNECT_RETENTION_DAYS" in listing["description"]
    assert "retention_days" in document["components"]["schemas"]["EventList"]["properties"]
    assert "retention_days" not in document["components"]["schemas"]["EventList"]["required"]
