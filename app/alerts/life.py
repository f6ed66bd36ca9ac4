"""What one event does to an alert's life, worked out in memory while a request is routed.

A request can carry several events of one alert (a batch, an Alertmanager group): each sees
the life as the previous one left it. The changes are kept as a list of steps that the store
applies in order in the transaction that writes their events. Steps say what happened
(opened, followed, acknowledged, resolved), never a whole new state, so that two requests
racing on one alert cannot undo each other's resolve.

    (none) --trigger--> triggered --acknowledge--> acknowledged --resolve--> resolved
                        triggered --resolve--> resolved
    resolved --trigger--> a new life (PagerDuty opens a new alert after a resolve)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal
from uuid import UUID

from app.ids import new_uuid

State = Literal["triggered", "acknowledged", "resolved"]
StepKind = Literal["open", "follow", "acknowledge", "resolve"]


@dataclass(frozen=True)
class Life:
    id: UUID
    dedup_key: str
    service_ids: tuple[UUID, ...]
    state: State

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"


@dataclass(frozen=True)
class Step:
    """One change to a life. `open` carries the services and what to show of the alert;
    `follow` adds services a trigger of an open alert named on top of its own."""

    kind: StepKind
    alert_id: UUID
    dedup_key: str
    service_ids: tuple[UUID, ...] = ()
    summary: str | None = None
    severity: str | None = None


@dataclass
class Lives:
    """The lives of one request's alerts, as known before it and as it changes them."""

    known: dict[str, Life]
    steps: list[Step] = field(default_factory=list)

    def current(self, dedup_key: str) -> Life | None:
        return self.known.get(dedup_key)

    def trigger(
        self,
        dedup_key: str,
        service_ids: Sequence[UUID],
        *,
        summary: str | None,
        severity: str | None,
    ) -> UUID:
        life = self.known.get(dedup_key)
        if life is not None and life.is_open:
            added = tuple(s for s in service_ids if s not in life.service_ids)
            self.known[dedup_key] = replace(life, service_ids=life.service_ids + added)
            self.steps.append(Step("follow", life.id, dedup_key, added, summary, severity))
            return life.id
        opened = Life(new_uuid(), dedup_key, tuple(dict.fromkeys(service_ids)), "triggered")
        self.known[dedup_key] = opened
        self.steps.append(
            Step("open", opened.id, dedup_key, opened.service_ids, summary, severity)
        )
        return opened.id

    def update(self, dedup_key: str, state: Literal["acknowledged", "resolved"]) -> UUID | None:
        """An acknowledge or resolve: the life it belongs to, if pdconnect knows one."""
        life = self.known.get(dedup_key)
        if life is None:
            return None
        if life.is_open:
            if state == "resolved":
                self.known[dedup_key] = replace(life, state="resolved")
                self.steps.append(Step("resolve", life.id, dedup_key))
            else:
                if life.state == "triggered":
                    self.known[dedup_key] = replace(life, state="acknowledged")
                self.steps.append(Step("acknowledge", life.id, dedup_key))
        return life.id


def live_services(life: Life, existing: Iterable[UUID]) -> tuple[UUID, ...]:
    """The life's services that the tenant still has (a removed one has nothing to close)."""
    present = set(existing)
    return tuple(s for s in life.service_ids if s in present)
