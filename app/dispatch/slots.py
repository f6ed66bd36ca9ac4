"""Send slots given out by priority, not by arrival.

A worker holds several times its concurrency in claimed events (worker.py's PIPELINE), and
they wait for a send slot. Handed out first come, first served, the one page of a quiet key
would wait behind every event an alert storm on other keys had put in the worker's hands
before it: the claims are fair across tenants and keys, the queue after them would not be.
So each waiter carries a rank (worker.py: how many events of its own key were in hand before
it), and a freed slot goes to the lowest rank, the earliest among equals. Events of one alert
are never in hand together (a claim takes only an alert's next event), so no alert's order
depends on this one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class PrioritySlots:
    """A semaphore whose waiters are served lowest `rank` first, then in arrival order."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def acquire(self, rank: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._arrivals), granted))
        try:
            await granted
        except asyncio.CancelledError:
            # Cancelled after the slot was handed over but before it was taken: pass it on.
            if granted.done() and not granted.cancelled():
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, granted = heapq.heappop(self._waiters)
            if not granted.done():  # a waiter gone (cancelled) is skipped
                granted.set_result(None)
                return
        self._free += 1
