"""Following the sandbox's arrival log for one scenario's routing keys.

The log is read incrementally (`after_seq`) all through the scenario, so its size limit never
drops an entry before it is read. An entry is complete when read, except a request the
sandbox is still holding (an injected timeout): that one is kept with no status, and it is
never an accepted event anyway (a held request is answered 500).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx2

from bench.stack import SetupError

POLL_SECONDS = 0.25
PAGE = 1000
ACCEPTED = 202


@dataclass(frozen=True)
class Arrival:
    seq: int  # the sandbox's arrival order
    time: float  # the sandbox's clock
    routing_key: str
    dedup_key: str | None
    action: str | None
    status: int | None
    fault: str | None  # the injected fault that answered it, if one did


@dataclass
class Watcher:
    http: httpx2.AsyncClient
    sandbox_url: str
    routing_keys: frozenset[str]
    arrivals: list[Arrival] = field(default_factory=list)
    delivered: set[tuple[str, str]] = field(default_factory=set)  # (dedup key, action)
    last_seq: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self.last_seq = int((await self._read(0, 1))["last_seq"])
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self, after_seq: int, limit: int) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.sandbox_url}/_sandbox/events",
            params={"after_seq": str(after_seq), "limit": str(limit)},
        )
        if response.status_code != 200:
            raise SetupError(f"sandbox arrival log: HTTP {response.status_code}")
        body: dict[str, Any] = response.json()
        return body

    async def _run(self) -> None:
        while True:
            events = (await self._read(self.last_seq, PAGE))["events"]
            for raw in events:
                self.last_seq = max(self.last_seq, int(raw["seq"]))
                if raw["routing_key"] in self.routing_keys:
                    self._keep(raw)
            if events:
                self._changed.set()
            if len(events) < PAGE:
                await asyncio.sleep(POLL_SECONDS)

    def _keep(self, raw: dict[str, Any]) -> None:
        arrival = Arrival(
            seq=int(raw["seq"]),
            time=float(raw["time"]),
            routing_key=str(raw["routing_key"]),
            dedup_key=raw["dedup_key"],
            action=raw["event_action"],
            status=raw["status"],
            fault=raw["fault"],
        )
        self.arrivals.append(arrival)
        if arrival.status == ACCEPTED and arrival.dedup_key and arrival.action:
            self.delivered.add((arrival.dedup_key, arrival.action))

    async def until_delivered(self, wanted: Collection[tuple[str, str]], within: float) -> bool:
        """Wait until every wanted event has been accepted by the sandbox; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.delivered.issuperset(wanted):
            if self._task is not None and self._task.done():
                self._task.result()  # the log could not be read: say why
                raise SetupError("the arrival log watcher stopped")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        return True
