"""Following the sandbox's arrival log for one scenario's routing keys.

The log is read incrementally (`after_seq`) all through the scenario, so its size limit never
drops an entry before it is read. An entry is complete when read, except a request the
sandbox is still holding (an injected latency, timeout or hang): that one is kept with no
status and read again, by its routing key, until it has one. A request held by latency is
processed when its wait ends, so it may well become an accepted event.
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
PENDING_POLL_SECONDS = 1.0  # how often held requests are read again
PENDING_BY_KEY = 4  # read them again by key when at most this many keys have some
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
    routing_keys: set[str]  # may grow while the watcher runs: keys added before their events
    arrivals: list[Arrival] = field(default_factory=list)
    delivered: set[tuple[str, str]] = field(default_factory=set)  # (dedup key, action)
    last_seq: int = 0
    _pending: dict[int, int] = field(default_factory=dict)  # seq → index in arrivals
    _next_pending_read: float = 0.0  # loop time
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

    async def _read(self, after_seq: int, limit: int, routing_key: str = "") -> dict[str, Any]:
        params = {"after_seq": str(after_seq), "limit": str(limit)}
        if routing_key:
            params["routing_key"] = routing_key
        response = await self.http.get(f"{self.sandbox_url}/_sandbox/events", params=params)
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
            answered = False
            now = asyncio.get_running_loop().time()
            if self._pending and now >= self._next_pending_read:
                self._next_pending_read = now + PENDING_POLL_SECONDS
                answered = await self._read_pending()
            if events or answered:
                self._changed.set()
            if len(events) < PAGE:
                await asyncio.sleep(POLL_SECONDS)

    async def _read_pending(self) -> bool:
        """Read the held requests again; True when one has its answer now. By routing key
        when few keys have held requests, else the whole log from the oldest one."""
        firsts: dict[str, int] = {}
        for seq, index in self._pending.items():
            key = self.arrivals[index].routing_key
            firsts[key] = min(firsts.get(key, seq), seq)
        if len(firsts) > PENDING_BY_KEY:
            return await self._reread(min(firsts.values()), "")
        answered = False
        for key, first in firsts.items():
            answered = await self._reread(first, key) or answered
        return answered

    async def _reread(self, first: int, routing_key: str) -> bool:
        answered = False
        after = first - 1
        while after < self.last_seq:
            events = (await self._read(after, PAGE, routing_key=routing_key))["events"]
            for raw in events:
                seq = int(raw["seq"])
                after = max(after, seq)
                held = self._pending.get(seq)
                if held is not None and raw["status"] is not None:
                    del self._pending[seq]
                    self._set(held, _arrival(raw))
                    answered = True
            if len(events) < PAGE:
                break
        return answered

    def _keep(self, raw: dict[str, Any]) -> None:
        arrival = _arrival(raw)
        self.arrivals.append(arrival)
        self._set(len(self.arrivals) - 1, arrival)

    def _set(self, index: int, arrival: Arrival) -> None:
        self.arrivals[index] = arrival
        if arrival.status is None:
            self._pending[arrival.seq] = index
        elif arrival.status == ACCEPTED and arrival.dedup_key and arrival.action:
            self.delivered.add((arrival.dedup_key, arrival.action))

    async def settled(self, within: float) -> bool:
        """Wait until no request is held any more (each has its answer); False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._pending:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

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


def _arrival(raw: dict[str, Any]) -> Arrival:
    return Arrival(
        seq=int(raw["seq"]),
        time=float(raw["time"]),
        routing_key=str(raw["routing_key"]),
        dedup_key=raw["dedup_key"],
        action=raw["event_action"],
        status=raw["status"],
        fault=raw["fault"],
    )
