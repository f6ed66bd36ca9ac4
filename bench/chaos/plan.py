"""What a scenario sends, and to whom.

Each scenario gets tenants of its own, each with services under made-up routing keys (fresh
keys: no scenario inherits another's rate windows). The events come in chains, one per dedup
key: trigger, then acknowledge, then resolve, each sent only once the one before was accepted,
so a chain's acceptance order is its step order. (dedup key, action) therefore names one
event, and that is how an arrival at the sandbox maps back to it; the trigger's summary also
carries the event's sequence number, for a reader of the sandbox's log.

A few "hot" services get a larger share of the chains, enough that their budget (120 events a
minute) binds and the dispatcher has to spend it and wait.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Any

import httpx2

from bench.stack import SetupError

STEPS = (("firing", "trigger"), ("acknowledged", "acknowledge"), ("resolved", "resolve"))


@dataclass(frozen=True)
class Tenant:
    id: str
    ingest_key: str


@dataclass(frozen=True)
class Target:
    tenant: Tenant
    service: str  # its name, which an alert may give as its `service`
    routing_key: str
    hot: bool


@dataclass(frozen=True)
class Step:
    seq: int  # unique in the scenario
    dedup_key: str
    status: str  # as sent: firing, acknowledged, resolved
    action: str  # as PagerDuty receives it: trigger, acknowledge, resolve
    rank: int  # place in its chain: the order it must reach PagerDuty in
    target: Target

    @property
    def key(self) -> tuple[str, str]:
        return (self.dedup_key, self.action)

    def body(self) -> dict[str, Any]:
        return {
            "dedup_key": self.dedup_key,
            "status": self.status,
            "summary": f"chaos event {self.seq}",
            "severity": "warning",
            "source": "chaos",
            "service": self.target.service,
            "details": {"chaos_seq": self.seq},
        }


Chain = list[Step]


@dataclass(frozen=True)
class Shape:
    tenants: int
    services_per_tenant: int
    hot_services: int
    hot_share: float  # of the chains, spread over the hot services


async def _post(http: httpx2.AsyncClient, url: str, token: str, body: object) -> dict[str, Any]:
    response = await http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 201:
        raise SetupError(f"POST {url}: HTTP {response.status_code} {response.text[:300]}")
    answer: dict[str, Any] = response.json()
    return answer


async def create_targets(
    http: httpx2.AsyncClient, web_url: str, admin_token: str, shape: Shape, label: str
) -> list[Target]:
    targets: list[Target] = []
    for t in range(shape.tenants):
        created = await _post(
            http, f"{web_url}/admin/v1/tenants", admin_token, {"name": f"chaos {label} {t}"}
        )
        tenant = Tenant(id=str(created["id"]), ingest_key=str(created["ingest_key"]))
        for s in range(shape.services_per_tenant):
            name = f"svc-{s:03d}"
            key = secrets.token_hex(16)  # 32 characters, like PagerDuty's
            await _post(
                http,
                f"{web_url}/admin/v1/tenants/{tenant.id}/services",
                admin_token,
                {"name": name, "routing_key": key, "api": "v2"},
            )
            hot = len(targets) < shape.hot_services
            targets.append(Target(tenant=tenant, service=name, routing_key=key, hot=hot))
    return targets


def plan_chains(
    targets: list[Target],
    events: int,
    shape: Shape,
    rng: random.Random,
    *,
    first_seq: int = 0,
    steps: int = len(STEPS),
    even: bool = False,
) -> list[Chain]:
    """Chains totalling `events` steps (the last one may be cut short), in sending order, each
    of `steps` steps (3: trigger, acknowledge, resolve; 1: a trigger alone), numbered from
    `first_seq`. `even`: the targets take turns (no hot ones) instead of being drawn."""
    hot = [t for t in targets if t.hot]
    cool = [t for t in targets if not t.hot]
    prefix = secrets.token_hex(3)
    chains: list[Chain] = []
    seq = first_seq
    end = first_seq + events
    while seq < end:
        if even:
            target = targets[len(chains) % len(targets)]
        else:
            pool = hot if hot and rng.random() < shape.hot_share else cool
            target = rng.choice(pool)
        dedup_key = f"chaos-{prefix}-{len(chains):05d}"
        chain: Chain = []
        for rank, (status, action) in enumerate(STEPS[: min(steps, end - seq)]):
            chain.append(Step(seq, dedup_key, status, action, rank, target))
            seq += 1
        chains.append(chain)
    return chains
