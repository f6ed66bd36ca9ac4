"""Following the sandbox's arrival log, to learn when each event reached "PagerDuty".

The log is read incrementally (`after_seq`), never filtered by dedup key: a filtered read
scans the whole log on every call, which would load the sandbox more as the run goes on. The
time recorded is the sandbox's own (`time.time()` in the sandbox process, the same clock as
ours on this machine), taken when the request's body was read, so how often we poll does not
change the figures, only how soon a waiting probe notices.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx2

from bench.stack import SetupError, Stack

POLL_SECONDS = 0.05
PAGE = 1000
ACCEPTED = 202


@dataclass(frozen=True)
class Arrival:
    seq: int
    time: float
    routing_key: str | None
    dedup_key: str | None
    status: int | None


@dataclass
class ArrivalWatcher:
    stack: Stack
    http: httpx2.AsyncClient
    # First accepted arrival of each dedup key: that is when the event "paged".
    accepted: dict[str, Arrival] = field(default_factory=dict)
    # Every arrival, kept only when asked for (the storm needs one key's history).
    history: list[Arrival] = field(default_factory=list)
    keep_history_for: frozenset[str] = frozenset()
    statuses: Counter[int | None] = field(default_factory=Counter)
    last_seq: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ArrivalWatcher:
        # Start after whatever is already in the log.
        self.last_seq = int((await self._read(after_seq=0, limit=1))["last_seq"])
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            got = await self._poll_once(limit=PAGE)
            if got < PAGE:
                await asyncio.sleep(POLL_SECONDS)

    async def _read(self, *, after_seq: int, limit: int) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.stack.sandbox_url}/_sandbox/events",
            params={"after_seq": str(after_seq), "limit": str(limit)},
        )
        if response.status_code != 200:
            raise SetupError(f"sandbox arrival log: HTTP {response.status_code}")
        body: dict[str, Any] = response.json()
        return body

    async def _poll_once(self, *, limit: int) -> int:
        events = (await self._read(after_seq=self.last_seq, limit=limit))["events"]
        for raw in events:
            arrival = Arrival(
                seq=int(raw["seq"]),
                time=float(raw["time"]),
                routing_key=raw["routing_key"],
                dedup_key=raw["dedup_key"],
                status=raw["status"],
            )
            self.last_seq = max(self.last_seq, arrival.seq)
            self.statuses[arrival.status] += 1
            if arrival.routing_key in self.keep_history_for:
                self.history.append(arrival)
            if (
                arrival.status == ACCEPTED
                and arrival.dedup_key is not None
                and arrival.dedup_key not in self.accepted
            ):
                self.accepted[arrival.dedup_key] = arrival
        if events:
            self._changed.set()
        return len(events)

    async def wait_for(self, dedup_key: str, within: float) -> Arrival | None:
        """The event's first accepted arrival, or None if it did not come `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while dedup_key not in self.accepted:
            if self._task is not None and self._task.done():
                self._task.result()  # the log could not be read: say why, loudly
                raise SetupError("the arrival log watcher stopped")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.accepted[dedup_key]
