"""A claim bounded in bytes (`max_bytes`, app/outbox/claims.py): it takes events in their turns
while their bodies add up to no more than the bound, and the first one whatever its size; what
it leaves stays queued, keeps its key's turn, and comes in the next claims in order. Each event's
size is its body's JSON text as written, kept beside it (`events.body_bytes`)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import UUID

from databases import Database

from app.installations import store as installations
from app.outbox import claims, outcomes
from app.outbox.events import NewEvent, enqueue
from tests.rows import manual_service, pasted_installation

KEY_A = "a" * 32
KEY_B = "b" * 32
KEY_C = "c" * 32
# Bodies of about this many bytes: sizes the tests' bounds are counted in.
SIZE = 1000


def body(dedup_key: str, size: int = SIZE, *, summary: str = "") -> dict[str, Any]:
    return {
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {"summary": summary or "s" * size, "source": "t", "severity": "error"},
    }


def written_size(value: dict[str, Any]) -> int:
    """The byte length of the body's JSON text as the standard library writes it compactly."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


async def another_service(db: Database, tenant_id: UUID, key_hash: str) -> UUID:
    svc = await installations.insert_manual_service(
        db,
        tenant_id=tenant_id,
        installation_id=await pasted_installation(db, tenant_id),
        name=f"svc {key_hash[:4]}",
        kind="manual",
        api_version="v2",
        routing_key_enc="not read here",
        routing_key_hash=key_hash,
    )
    assert svc is not None
    return svc.id


async def queue(
    db: Database, tenant_id: UUID, service_id: UUID, key_hash: str, *bodies: dict[str, Any]
) -> list[UUID]:
    written = await enqueue(
        db,
        [
            NewEvent(
                tenant_id=tenant_id,
                service_id=service_id,
                routing_key_hash=key_hash,
                dedup_key=b["dedup_key"],
                kind="trigger",
                api="v2",
                body=b,
                notes=(),
                source="test",
            )
            for b in bodies
        ],
    )
    return [event_id for event_id, _ in written]


async def claim(db: Database, max_bytes: int | None) -> list[claims.Claimed]:
    return await claims.claim(
        db,
        batch=16,
        per_tenant=16,
        lease=timedelta(seconds=30),
        max_in_flight_per_key=16,
        host_rooms={},
        max_bytes=max_bytes,
    )


async def statuses(db: Database, ids: list[UUID]) -> list[str]:
    rows = await db.fetch_all("SELECT id, status FROM events WHERE id = ANY(:ids)", {"ids": ids})
    found = {r._mapping["id"]: r._mapping["status"] for r in rows}
    return [found[i] for i in ids]


async def test_an_event_is_written_with_its_bodys_size_in_bytes(cdb: Database) -> None:
    tenant, service = await manual_service(cdb, KEY_A)
    # Characters of two, three and four bytes in UTF-8: the size counts bytes, not characters.
    sent = body("k", summary="disque plein à 99 % · 磁盘已满 🔥")
    [event] = await queue(cdb, tenant, service, KEY_A, sent)
    stored = await cdb.fetch_val("SELECT body_bytes FROM events WHERE id = :id", {"id": event})
    assert stored == written_size(sent)
    [claimed] = await claim(cdb, None)
    assert claimed.body_bytes == written_size(sent)
    assert claimed.body == sent


async def test_a_claim_takes_events_while_they_fit_and_the_rest_come_next_in_order(
    cdb: Database,
) -> None:
    tenant, service = await manual_service(cdb, KEY_A)
    events = await queue(cdb, tenant, service, KEY_A, *(body(f"k{n}") for n in range(7)))
    size = written_size(body("k0"))
    # Room for two and a half: two are taken, the rest wait untouched.
    first = await claim(cdb, size * 5 // 2)
    assert [c.id for c in first] == events[:2]
    assert sum(c.body_bytes for c in first) <= size * 5 // 2
    assert await statuses(cdb, events[2:]) == ["queued"] * 5
    # The next claims take the next ones, oldest first, as the bound lets them.
    second = await claim(cdb, size * 5 // 2)
    third = await claim(cdb, size * 3)
    assert [c.id for c in second] == events[2:4]
    assert [c.id for c in third] == events[4:7]
    assert await claim(cdb, size * 3) == []


async def test_an_event_larger_than_the_bound_is_claimed_alone(cdb: Database) -> None:
    tenant, service = await manual_service(cdb, KEY_A)
    large = body("large", size=SIZE * 20)
    events = await queue(cdb, tenant, service, KEY_A, large, body("k1"), body("k2"))
    # Nothing else fits beside it, and it is claimed all the same: else it would never be sent.
    [alone] = await claim(cdb, SIZE * 3)
    assert alone.id == events[0]
    assert alone.body_bytes == written_size(large)
    assert await statuses(cdb, events[1:]) == ["queued", "queued"]
    assert [c.id for c in await claim(cdb, SIZE * 3)] == events[1:]


async def test_the_bound_cuts_the_turns_as_they_are_tenant_by_tenant(cdb: Database) -> None:
    """A's events are older, but each tenant has its first turn before either has a second:
    room for two events is one of A's and B's page, not two of A's."""
    a_tenant, a_service = await manual_service(cdb, KEY_A)
    b_tenant, b_service = await manual_service(cdb, KEY_B)
    a_events = await queue(cdb, a_tenant, a_service, KEY_A, *(body(f"a{n}") for n in range(5)))
    [page] = await queue(cdb, b_tenant, b_service, KEY_B, body("b0"))
    claimed = await claim(cdb, written_size(body("a0")) * 2)
    assert [c.id for c in claimed] == [a_events[0], page]


async def test_keys_left_out_for_bytes_keep_their_turn(cdb: Database) -> None:
    """Three keys of one tenant with two events each, room for one event a claim: the key
    claimed from goes to the back of the tenant's turns, the two that lost only to the bound
    keep their place, so every key has its first event claimed before any has its second."""
    tenant, a = await manual_service(cdb, KEY_A)
    b = await another_service(cdb, tenant, KEY_B)
    c = await another_service(cdb, tenant, KEY_C)
    for service, key in ((a, KEY_A), (b, KEY_B), (c, KEY_C)):
        await queue(cdb, tenant, service, key, body(f"{key[0]}1"), body(f"{key[0]}2"))
    keys = []
    for _ in range(6):
        [claimed] = await claim(cdb, SIZE)
        keys.append(claimed.routing_key_hash)
        assert await outcomes.mark_delivered(cdb, claimed)
    assert sorted(keys[:3]) == [KEY_A, KEY_B, KEY_C]
    assert keys[3:] == keys[:3]


async def test_an_event_written_before_sizes_were_kept_is_measured_by_the_claim(
    cdb: Database,
) -> None:
    tenant, service = await manual_service(cdb, KEY_A)
    events = await queue(cdb, tenant, service, KEY_A, *(body(f"k{n}") for n in range(3)))
    # As migration 0023 leaves the events already there: no size.
    await cdb.execute("UPDATE events SET body_bytes = NULL")
    measured = await cdb.fetch_val(
        "SELECT octet_length(CAST(body AS text)) FROM events WHERE id = :id", {"id": events[0]}
    )
    # Counted at their size, not as nothing: room for one and a half takes one.
    [claimed] = await claim(cdb, measured * 3 // 2)
    assert claimed.id == events[0]
    assert claimed.body_bytes == measured
    assert await statuses(cdb, events[1:]) == ["queued", "queued"]
