"""Send slots go to the lowest rank first: a quiet key's page before a storm's backlog."""

from __future__ import annotations

import asyncio

from app.dispatch.slots import PrioritySlots


async def test_a_freed_slot_goes_to_the_lowest_rank_then_the_earliest() -> None:
    slots = PrioritySlots(1)
    await slots.acquire(0)
    served: list[str] = []

    async def wait(name: str, rank: int) -> None:
        await slots.acquire(rank)
        served.append(name)
        slots.release()

    # A storm's events (ranks 1 to 3: each key's later events) wait first; a quiet key's
    # first event (rank 0) comes last.
    waiters = [asyncio.create_task(wait(f"storm-{r}", r)) for r in (3, 1, 2, 1)]
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(wait("page", 0)))
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*waiters)
    assert served == ["page", "storm-1", "storm-1", "storm-2", "storm-3"]


async def test_a_waiter_that_gives_up_leaves_its_slot_to_the_next() -> None:
    slots = PrioritySlots(1)
    await slots.acquire(0)
    gone = asyncio.create_task(slots.acquire(0))
    later = asyncio.create_task(slots.acquire(5))
    await asyncio.sleep(0)
    # The slot is handed to the first waiter, which is cancelled before it takes it.
    slots.release()
    gone.cancel()
    await asyncio.sleep(0)
    await asyncio.wait_for(later, 1.0)
    assert gone.cancelled()
    # One slot, held by `later`: nobody else gets in until it is released.
    third = asyncio.create_task(slots.acquire(0))
    await asyncio.sleep(0)
    assert not third.done()
    slots.release()
    await asyncio.wait_for(third, 1.0)
