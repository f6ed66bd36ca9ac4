"""Concurrent ingest requests are written together (app/db/group.py), and each still gets the
answer it would have had alone: a request the rules refuse, or one its key's budget refuses,
costs the others of its batch nothing; a request's events keep their order."""

from __future__ import annotations

import asyncio
from uuid import UUID

import httpx2
from databases import Database
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import admin_headers


async def tenant_with_two_services(client: httpx2.AsyncClient) -> tuple[UUID, str, list[str]]:
    created = await client.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    tenant = created.json()
    ids = []
    for name, key in (("Database", "a" * 32), ("Web", "b" * 32)):
        added = await client.post(
            f"/admin/v1/tenants/{tenant['id']}/services",
            json={"name": name, "routing_key": key, "api": "v2"},
            headers=admin_headers(),
        )
        assert added.status_code == 201, added.text
        ids.append(added.json()["id"])
    # Only alerts about the database are routed: anything else has no route.
    rules = await client.put(
        f"/admin/v1/tenants/{tenant['id']}/routes",
        json={
            "routes": [
                {
                    "name": "database",
                    "conditions": [{"field": "summary", "op": "regex", "value": "^db"}],
                    "service_ids": [ids[0]],
                }
            ]
        },
        headers=admin_headers(),
    )
    assert rules.status_code == 200, rules.text
    return UUID(tenant["id"]), tenant["ingest_key"], ids


async def test_a_refused_request_among_concurrent_ones_costs_them_nothing(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, key, _ = await tenant_with_two_services(client)
    headers = {"Authorization": f"Bearer {key}"}
    summaries = [f"db slow {i}" for i in range(20)]
    summaries[7] = "web down"
    answers = await asyncio.gather(
        *(
            client.post("/v1/alerts", json={"summary": s, "dedup_key": f"k{i}"}, headers=headers)
            for i, s in enumerate(summaries)
        )
    )
    codes = [a.status_code for a in answers]
    assert codes[7] == 422, answers[7].text
    assert "no routing rule matches" in answers[7].text
    assert codes[:7] + codes[8:] == [202] * 19
    written = await db.fetch_all(
        "SELECT dedup_key FROM events WHERE tenant_id = :t ORDER BY seq", {"t": tenant_id}
    )
    assert sorted(r._mapping["dedup_key"] for r in written) == sorted(
        f"k{i}" for i in range(20) if i != 7
    )


async def test_one_requests_events_keep_their_order_among_concurrent_requests(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, key, _ = await tenant_with_two_services(client)
    headers = {"Authorization": f"Bearer {key}"}
    life = [
        {"summary": "db slow", "dedup_key": "same", "status": "firing"},
        {"summary": "db slow", "dedup_key": "same", "status": "acknowledged"},
        {"summary": "db slow", "dedup_key": "same", "status": "resolved"},
    ]
    others = [
        client.post(
            "/v1/alerts", json={"summary": f"db {i}", "dedup_key": f"o{i}"}, headers=headers
        )
        for i in range(10)
    ]
    answers = await asyncio.gather(
        client.post("/v1/alerts", json={"alerts": life}, headers=headers), *others
    )
    assert [a.status_code for a in answers] == [202] * 11
    kinds = await db.fetch_all(
        "SELECT kind FROM events WHERE tenant_id = :t AND dedup_key = 'same' ORDER BY seq",
        {"t": tenant_id},
    )
    assert [r._mapping["kind"] for r in kinds] == ["trigger", "acknowledge", "resolve"]
    state = await db.fetch_val(
        "SELECT state FROM alerts WHERE tenant_id = :t AND dedup_key = 'same'", {"t": tenant_id}
    )
    assert state == "resolved"


async def test_a_resolve_follows_its_trigger_whatever_the_rules_say(
    db: Database, client: httpx2.AsyncClient
) -> None:
    """The resolve's summary matches no rule: it goes where its trigger went (read from the
    alert's life in the batch that writes it), not refused and not recorded as skipped."""
    tenant_id, key, ids = await tenant_with_two_services(client)
    headers = {"Authorization": f"Bearer {key}"}
    answers = [
        await client.post(
            "/v1/alerts", json={"summary": "db slow", "dedup_key": "x"}, headers=headers
        ),
        await client.post(
            "/v1/alerts",
            json={"summary": "-", "dedup_key": "x", "status": "resolved"},
            headers=headers,
        ),
    ]
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    rows = await db.fetch_all(
        "SELECT kind, status, service_id FROM events WHERE tenant_id = :t ORDER BY seq",
        {"t": tenant_id},
    )
    assert [(r._mapping["kind"], str(r._mapping["service_id"])) for r in rows] == [
        ("trigger", ids[0]),
        ("resolve", ids[0]),
    ]
    assert all(r._mapping["status"] == "queued" for r in rows)


async def _lives(db: Database, tenant_id: UUID) -> list[tuple[str, str]]:
    rows = await db.fetch_all(
        "SELECT dedup_key, state FROM alerts WHERE tenant_id = :t ORDER BY dedup_key",
        {"t": tenant_id},
    )
    return [(r._mapping["dedup_key"], r._mapping["state"]) for r in rows]


async def test_a_batch_of_new_alerts_opens_each_life_and_makes_the_key_ready(
    db: Database, client: httpx2.AsyncClient
) -> None:
    """New alerts, an acknowledge and a resolve of others, sent at once: each life takes one
    step, and the batch is one statement that writes lives, events and the ready key."""
    tenant_id, key, _ = await tenant_with_two_services(client)
    headers = {"Authorization": f"Bearer {key}"}
    for k in ("acked", "resolved"):
        first = await client.post(
            "/v1/alerts", json={"summary": "db slow", "dedup_key": k}, headers=headers
        )
        assert first.status_code == 202, first.text
    bodies = [{"summary": "db slow", "dedup_key": f"new{i}"} for i in range(5)]
    bodies += [
        {"summary": "-", "dedup_key": "acked", "status": "acknowledged"},
        {"summary": "-", "dedup_key": "resolved", "status": "resolved"},
    ]
    answers = await asyncio.gather(
        *(client.post("/v1/alerts", json=b, headers=headers) for b in bodies)
    )
    assert [a.status_code for a in answers] == [202] * 7, [a.text for a in answers]
    assert await _lives(db, tenant_id) == [
        ("acked", "acknowledged"),
        *((f"new{i}", "triggered") for i in range(5)),
        ("resolved", "resolved"),
    ]
    linked = await db.fetch_val(
        "SELECT count(*) FROM events e JOIN alerts a ON a.id = e.alert_id "
        "WHERE e.tenant_id = :t AND e.dedup_key = a.dedup_key",
        {"t": tenant_id},
    )
    assert linked == 9
    ready = await db.fetch_all(
        "SELECT routing_key_hash FROM ready_keys WHERE tenant_id = :t", {"t": tenant_id}
    )
    assert len(ready) == 1


async def test_two_steps_of_one_alert_in_one_batch_both_take_effect(
    db: Database, client: httpx2.AsyncClient
) -> None:
    """A trigger and its acknowledge sent at once, then a resolve and a new trigger of the same
    key: statements of one batch cannot see each other's rows, so such a batch is written a
    kind of step at a time, and the lives end as the steps say."""
    tenant_id, key, _ = await tenant_with_two_services(client)
    headers = {"Authorization": f"Bearer {key}"}
    answers = await asyncio.gather(
        client.post("/v1/alerts", json={"summary": "db slow", "dedup_key": "x"}, headers=headers),
        client.post(
            "/v1/alerts",
            json={"summary": "-", "dedup_key": "x", "status": "acknowledged"},
            headers=headers,
        ),
    )
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert await _lives(db, tenant_id) == [("x", "acknowledged")]
    answers = await asyncio.gather(
        client.post(
            "/v1/alerts",
            json={"summary": "-", "dedup_key": "x", "status": "resolved"},
            headers=headers,
        ),
        client.post("/v1/alerts", json={"summary": "db again", "dedup_key": "x"}, headers=headers),
    )
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert await _lives(db, tenant_id) == [("x", "resolved"), ("x", "triggered")]
    rows = await db.fetch_all(
        "SELECT e.kind, a.state FROM events e JOIN alerts a ON a.id = e.alert_id "
        "WHERE e.tenant_id = :t ORDER BY e.seq",
        {"t": tenant_id},
    )
    assert [(r._mapping["kind"], r._mapping["state"]) for r in rows] == [
        ("trigger", "resolved"),
        ("acknowledge", "resolved"),
        ("resolve", "resolved"),
        ("trigger", "triggered"),
    ]


async def test_metrics_show_how_many_requests_shared_a_commit_and_how_long_it_took(
    client: httpx2.AsyncClient,
) -> None:
    _, key, _ = await tenant_with_two_services(client)
    headers = {"Authorization": f"Bearer {key}"}
    before = await scrape(client)
    answers = await asyncio.gather(
        *(
            client.post(
                "/v1/alerts", json={"summary": f"db {i}", "dedup_key": f"m{i}"}, headers=headers
            )
            for i in range(12)
        )
    )
    assert [a.status_code for a in answers] == [202] * 12
    middle = await scrape(client)
    # Every request was in exactly one committed transaction; the twelve sent together
    # shared fewer than twelve.
    assert moved(before, middle, "pdconnect_ingest_batch_requests_sum") == 12
    batches = moved(before, middle, "pdconnect_ingest_batch_requests_count")
    assert 1 <= batches < 12
    assert moved(before, middle, "pdconnect_ingest_commit_seconds_count") == batches
    assert 0 < moved(before, middle, "pdconnect_ingest_commit_seconds_sum") < 60
    # A request refused in its transaction (no route, decided beside its alert's life) was
    # in one too.
    refused = await client.post("/v1/alerts", json={"summary": "web down"}, headers=headers)
    assert refused.status_code == 422
    after = await scrape(client)
    assert moved(middle, after, "pdconnect_ingest_batch_requests_sum") == 1
    assert moved(middle, after, "pdconnect_ingest_commit_seconds_count") == 1


def moved(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


async def scrape(client: httpx2.AsyncClient) -> dict[str, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        # The histograms' sums and counts (their buckets carry an `le` label).
        if not sample.labels
    }
