"""The arrival log: every Events API request, in the order it arrived, with the answer given.

An entry is written when the request's body has been read, before any injected latency, so
its `seq` is its place in arrival order even when answers leave in another order; `status`
stays None until the answer is decided. Sequence numbers keep counting across `clear()`, so a
reader polling with `after_seq` never sees a number twice.

The log keeps the newest `MAX_ARRIVALS` entries: a long benchmark cannot exhaust memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

MAX_ARRIVALS = 200_000
# Logged fields are cut so that a flood of oversized invalid events stays small in memory.
_KEY_CHARS = 64
_DEDUP_CHARS = 300
_SUMMARY_CHARS = 1024


@dataclass(slots=True)
class Arrival:
    seq: int
    time: float  # sandbox clock
    region: str
    endpoint: str  # "v2", "change" or "v1"
    routing_key: str | None
    dedup_key: str | None
    event_action: str | None
    summary: str | None
    status: int | None = None
    errors: list[str] = field(default_factory=list)
    fault: str | None = None  # the injected fault that produced the answer, if one did

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "region": self.region,
            "endpoint": self.endpoint,
            "routing_key": self.routing_key,
            "dedup_key": self.dedup_key,
            "event_action": self.event_action,
            "summary": self.summary,
            "status": self.status,
            "errors": list(self.errors),
            "fault": self.fault,
        }


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


_Described = tuple[str | None, str | None, str | None, str | None]


def describe(endpoint: str, body: object) -> _Described:
    """(routing_key, dedup_key, event_action, summary) as far as a possibly invalid body has
    them, in either API's field names."""
    if not isinstance(body, dict):
        return None, None, None, None
    v1 = endpoint == "v1"
    payload = body.get("payload")
    summary = (
        body.get("description")
        if v1
        else payload.get("summary")
        if isinstance(payload, dict)
        else None
    )
    return (
        _text(body.get("service_key" if v1 else "routing_key"), _KEY_CHARS),
        _text(body.get("incident_key" if v1 else "dedup_key"), _DEDUP_CHARS),
        _text(body.get("event_type" if v1 else "event_action"), _KEY_CHARS),
        _text(summary, _SUMMARY_CHARS),
    )


class ArrivalLog:
    def __init__(self, capacity: int = MAX_ARRIVALS) -> None:
        self._entries: deque[Arrival] = deque(maxlen=capacity)
        self._next_seq = 1

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Arrival]:
        return iter(self._entries)

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def open(self, time: float, region: str, endpoint: str, body: object) -> Arrival:
        routing_key, dedup_key, action, summary = describe(endpoint, body)
        arrival = Arrival(
            self._next_seq, time, region, endpoint, routing_key, dedup_key, action, summary
        )
        self._next_seq += 1
        self._entries.append(arrival)
        return arrival

    def clear(self) -> None:
        self._entries.clear()

    def latest(self, n: int) -> list[Arrival]:
        start = max(len(self._entries) - n, 0)
        return [self._entries[i] for i in range(start, len(self._entries))]

    def select(
        self,
        *,
        routing_key: str | None = None,
        dedup_key: str | None = None,
        status: int | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[Arrival]:
        """Entries after `after_seq` matching every filter given, oldest first."""
        found: list[Arrival] = []
        # Sequence numbers in the log are consecutive, so the first entry after `after_seq`
        # is found by arithmetic rather than by comparing every older entry.
        skip = after_seq - self._entries[0].seq + 1 if self._entries else 0
        for arrival in islice(self._entries, max(skip, 0), None):
            if routing_key is not None and arrival.routing_key != routing_key:
                continue
            if dedup_key is not None and arrival.dedup_key != dedup_key:
                continue
            if status is not None and arrival.status != status:
                continue
            found.append(arrival)
            if limit is not None and len(found) >= limit:
                break
        return found
