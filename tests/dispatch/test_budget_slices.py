"""A key's budget is counted in slices of its window: its row stays the same small size
whatever the budget (PagerDuty grants some accounts 10 000 events a minute per key), the
count stays exact at the limit, and a spent budget rests the key until the slice that holds
the limit-th newest send has left the window: never sooner, and never less than a slice short
of the window after that send."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

from app.dispatch import store
from app.outbox import claims
from tests.dispatch.conftest import World

KEY = "c" * 32
HOST = "events.pagerduty.test"
WINDOW = timedelta(seconds=62)
LEASE = timedelta(seconds=30)


# Sends in flight are not what these tests are about: the cap is out of the way.
IN_FLIGHT = 10_000


async def claim_all(world: World, n: int) -> list[claims.Claimed]:
    return await claims.claim(
        world.db,
        batch=n,
        per_tenant=n,
        lease=LEASE,
        max_in_flight_per_key=IN_FLIGHT,
        host_rooms={},
    )


async def spend_each(world: World, claimed: list[claims.Claimed]) -> list[store.Spend]:
    """One spend per statement, as concurrent sends of several workers make them."""
    spent = []
    for c in claimed:
        spent += await store.spend_many(
            world.db, [c], window=WINDOW, max_in_flight=IN_FLIGHT, lease=LEASE
        )
    return spent


SLICE = store.slice_ms(WINDOW)


def slice_of(at: datetime) -> int:
    """When the slice of the window `at` falls in began, in Unix milliseconds."""
    return math.floor(at.timestamp() * 1000 / SLICE) * SLICE


async def key_row(world: World, key_hash: str) -> tuple[list[int], list[int]]:
    row = await world.db.fetch_one(
        "SELECT slice_starts, slice_counts FROM dispatch_keys WHERE routing_key_hash = :h",
        {"h": key_hash},
    )
    assert row is not None
    return list(row["slice_starts"]), list(row["slice_counts"])


async def test_a_large_budget_keeps_its_row_small_and_counts_every_send(world: World) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY, limit=10_000)
    await store.learn_host(world.db, service[1], HOST)
    sent = 0
    for _ in range(3):
        await world.send(tenant, service, None, n=200)
        claimed = await claim_all(world, 200)
        spent = await spend_each(world, claimed)
        assert all(s.attempt_id is not None for s in spent)
        sent += len(spent)
    starts, counts = await key_row(world, service[1])
    # Every send is counted, each in the slice it was made in, oldest slice first, at most one
    # entry per slice of the window whatever the budget.
    assert sum(counts) == sent == 600
    assert starts == sorted(set(starts))
    assert len(starts) <= store.SLICES + 1
    made = await world.db.fetch_all(
        "SELECT started_at FROM delivery_attempts WHERE routing_key_hash = :h",
        {"h": service[1]},
    )
    by_slice = Counter(slice_of(r["started_at"]) for r in made)
    assert sorted(by_slice.items()) == list(zip(starts, counts, strict=True))


async def test_the_limit_is_exact_and_the_rest_ends_when_its_second_leaves_the_window(
    world: World,
) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY, limit=5)
    await store.learn_host(world.db, service[1], HOST)
    events = await world.send(tenant, service, None, n=6)
    claimed = await claim_all(world, 6)
    assert sorted(c.id for c in claimed) == sorted(events)
    answers = [
        await store.reserve_budget(
            world.db, c, host=HOST, window=WINDOW, max_in_flight=IN_FLIGHT, lease=LEASE
        )
        for c in claimed
    ]
    opened = [a for a in answers if isinstance(a, store.Attempt)]
    assert len(opened) == 5
    assert answers[5] == "budget_spent"
    paused = await world.db.fetch_one(
        "SELECT paused_until, pause_reason FROM dispatch_keys WHERE routing_key_hash = :h",
        {"h": service[1]},
    )
    assert paused is not None
    # The fifth-newest send (the oldest of the five) is counted as made when its slice began:
    # the key rests until that slice has left the window, not a moment sooner, and never less
    # than a slice short of the window after the send itself (61 s of 62: PagerDuty counts 60).
    oldest = min(a.spent_at for a in opened)
    its_slice = datetime.fromtimestamp(slice_of(oldest) / 1000, UTC)
    assert paused["paused_until"] == its_slice + WINDOW
    assert oldest + WINDOW - timedelta(milliseconds=SLICE) < paused["paused_until"]
    assert paused["paused_until"] <= oldest + WINDOW
    assert "spent its budget of 5 events in 62 seconds" in paused["pause_reason"]


async def test_slices_that_left_the_window_are_dropped_on_the_next_spend(world: World) -> None:
    tenant = await world.tenant()
    service = await world.service(tenant, KEY, limit=1000)
    await store.learn_host(world.db, service[1], HOST)
    # Sends made long ago (as a row carried over the upgrade would hold them), and one now.
    await world.db.execute(
        "UPDATE dispatch_keys SET slice_starts = ARRAY[1000, 2000, 3000]::bigint[],"
        " slice_counts = ARRAY[999, 999, 999] WHERE routing_key_hash = :h",
        {"h": service[1]},
    )
    await world.send(tenant, service, None, n=1)
    [claimed] = await claim_all(world, 1)
    [spent] = await spend_each(world, [claimed])
    assert spent.attempt_id is not None, "sends a window ago no longer count"
    assert spent.spent_at is not None
    starts, counts = await key_row(world, service[1])
    assert starts == [slice_of(spent.spent_at)]
    assert counts == [1]
