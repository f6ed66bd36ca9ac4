"""Routing runs off the event loop: in a pool of threads of its own, one lane per tenant.

The event loop serves every tenant, so a request's rule matching (bounded in CPU time by its
`MatchBudget`, app/ingest/routing.py) runs in a routing thread; and one tenant's requests hold
at most `ROUTING_THREADS_PER_TENANT` of those threads at once, so its heavy requests, however
many, wait in its own lane rather than fill the pool every tenant routes in.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

# Routing threads: RE2 lets go of the GIL while it scans, so two cores match in parallel; a
# pool of our own keeps the loop's default executor (DNS lookups of the dispatcher and the
# database pool) free whatever routing does.
ROUTING_THREADS = 4
# Of which one tenant's requests hold at most this many at once; its others wait on the loop,
# holding no thread. So one tenant's heavy requests, however many, cannot fill the pool that
# every tenant routes in (each request's routing is short: a tenant loses little by the wait).
ROUTING_THREADS_PER_TENANT = 1


T = TypeVar("T")
_routing_threads = ThreadPoolExecutor(ROUTING_THREADS, thread_name_prefix="pdconnect-routing")


@dataclass
class _Lane:
    slots: asyncio.Semaphore
    users: int = 0


# Per event loop (tests run several) and tenant; a lane no request uses is dropped.
_lanes: dict[tuple[asyncio.AbstractEventLoop, Hashable], _Lane] = {}


async def off_the_loop(work: Callable[[], T], *, lane: Hashable) -> T:
    """`work()` in a routing thread, once one of `lane`'s (a tenant's) slots is free."""
    loop = asyncio.get_running_loop()
    key = (loop, lane)
    entry = _lanes.setdefault(key, _Lane(asyncio.Semaphore(ROUTING_THREADS_PER_TENANT)))
    entry.users += 1
    try:
        await entry.slots.acquire()
    except BaseException:
        _leave(key, entry)
        raise
    running = loop.run_in_executor(_routing_threads, contextvars.copy_context().run, work)

    def finished(_: object) -> None:
        entry.slots.release()
        _leave(key, entry)

    # The slot is freed when the thread is done, not when the request is: one cancelled
    # meanwhile (its client gone, its deadline past) leaves the work to finish, which its
    # `MatchBudget` bounds, and must not let the tenant start more beside it.
    running.add_done_callback(finished)
    return await asyncio.shield(running)


def _leave(key: tuple[asyncio.AbstractEventLoop, Hashable], entry: _Lane) -> None:
    entry.users -= 1
    if entry.users == 0 and _lanes.get(key) is entry:
        del _lanes[key]
