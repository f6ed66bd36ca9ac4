"""Time to page: one alert, timed from pdconnect's 202 to its arrival at the sandbox.

Both ends are wall-clock readings (`time.time()`) of processes on this machine: ours when the
202 was read, the sandbox's when the event's body was read. A value can be slightly negative:
the dispatcher may deliver the event before the client has finished reading the answer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx2

from bench.arrivals import ArrivalWatcher
from bench.load import encode
from bench.report import ms, percentile
from bench.stack import Tenant, alert

# A probe not delivered within this long counts as missing rather than as a (huge) figure.
PROBE_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Probe:
    dedup_key: str
    sent: float
    answered: float | None  # when the 202 was read; None if the request was refused
    arrived: float | None  # at the sandbox; None if not within PROBE_WAIT_SECONDS

    @property
    def time_to_page(self) -> float | None:
        if self.answered is None or self.arrived is None:
            return None
        return self.arrived - self.answered


async def post_alert(
    http: httpx2.AsyncClient, url: str, tenant: Tenant, dedup_key: str, service: str | None
) -> tuple[float, float | None]:
    """(sent, answered) wall-clock times; answered is None unless pdconnect said 202."""
    body = encode(alert(dedup_key, service=service))
    headers = {**tenant.auth, "Content-Type": "application/json"}
    sent = time.time()
    try:
        response = await http.post(f"{url}/v1/alerts", content=body, headers=headers)
    except httpx2.HTTPError:
        return sent, None
    answered = time.time()
    return sent, answered if response.status_code == 202 else None


async def probe(
    http: httpx2.AsyncClient,
    url: str,
    watcher: ArrivalWatcher,
    tenant: Tenant,
    dedup_key: str,
    service: str | None = None,
) -> Probe:
    sent, answered = await post_alert(http, url, tenant, dedup_key, service)
    arrival = None
    if answered is not None:
        arrival = await watcher.wait_for(dedup_key, within=PROBE_WAIT_SECONDS)
    return Probe(dedup_key, sent, answered, None if arrival is None else arrival.time)


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float | None
    p99: float | None
    max: float | None
    missing: int

    def cells(self) -> list[object]:
        return [self.count, ms(self.p50), ms(self.p99), ms(self.max), self.missing]


SUMMARY_HEADERS = ("alerts", "p50 ms", "p99 ms", "max ms", "missing")


def summarize(probes: Sequence[Probe]) -> Summary:
    values = [p.time_to_page for p in probes if p.time_to_page is not None]
    return Summary(
        count=len(values),
        p50=percentile(values, 50),
        p99=percentile(values, 99),
        max=max(values) if values else None,
        missing=len(probes) - len(values),
    )
