"""The webhook delivery log: one record per delivery (one event to one subscription), updated
as its attempts go, so a test can see what was sent and how the receiver answered."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from pdsandbox.timefmt import iso

MAX_DELIVERIES = 10_000  # the oldest finished ones go first past this

DeliveryState = Literal["pending", "retrying", "delivered", "dropped"]
FINISHED: tuple[DeliveryState, ...] = ("delivered", "dropped")


@dataclass(slots=True)
class Delivery:
    id: str  # the X-Webhook-Id header, the same on every attempt
    subscription_id: str
    url: str
    event_type: str
    resource_id: str | None  # the incident's or the service's id; None for a pagey.ping
    incident_id: str | None
    body: bytes  # exactly what is signed and sent
    created_at: float
    state: DeliveryState = "pending"
    attempts: int = 0
    last_status: int | None = None  # None: no answer (timeout, connection refused, ...)
    last_error: str | None = None
    signature: str | None = None  # the X-PagerDuty-Signature of the last attempt
    finished_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        payload = json.loads(self.body)
        return {
            "id": self.id,
            "subscription": self.subscription_id,
            "url": self.url,
            "event_id": payload["event"]["id"],
            "event_type": self.event_type,
            "resource_id": self.resource_id,
            "incident": self.incident_id,
            "state": self.state,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "signature": self.signature,
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at) if self.finished_at is not None else None,
            "payload": payload,
        }


class DeliveryLog:
    def __init__(self) -> None:
        self._deliveries: dict[str, Delivery] = {}  # insertion order is creation order

    def __len__(self) -> int:
        return len(self._deliveries)

    def add(self, delivery: Delivery) -> None:
        self._deliveries[delivery.id] = delivery
        if len(self._deliveries) > MAX_DELIVERIES:
            self._trim()

    def select(
        self,
        subscription_id: str | None = None,
        event_type: str | None = None,
        state: str | None = None,
    ) -> list[Delivery]:
        return [
            d
            for d in self._deliveries.values()
            if (subscription_id is None or d.subscription_id == subscription_id)
            and (event_type is None or d.event_type == event_type)
            and (state is None or d.state == state)
        ]

    def clear(self) -> None:
        # Deliveries under way stay in their queues and finish; they are just not listed.
        self._deliveries.clear()

    def _trim(self) -> None:
        # Down to 90% at once, so a busy sandbox does not scan the log on every delivery.
        excess = len(self._deliveries) - MAX_DELIVERIES * 9 // 10
        finished = (d.id for d in self._deliveries.values() if d.state in FINISHED)
        for delivery_id in list(islice(finished, excess)):
            del self._deliveries[delivery_id]
