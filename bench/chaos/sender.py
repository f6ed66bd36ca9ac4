"""The load: chains of events sent by concurrent clients, the way a careful sender sends.

A client sends one chain at a time, one step after another, to the web processes in turn.
A 202 is recorded with the event id it returns. A 503 is retried after its `Retry-After` (an
answer without one is counted: the product promises it). A request cut off by a killed
process is retried too: it may have been committed without its answer getting out, so the
retry may add a second copy of the same event (PagerDuty deduplicates it, and the ordering
check allows it). Other 5xx are counted and retried; a 4xx means the run is set up wrongly.
Requests leave at most `rate` per second in total, retries included.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx2

from bench.chaos.plan import Chain, Step
from bench.stack import SetupError

RETRY_AFTER_CAP = 10.0
RETRY_PAUSE = 0.5  # after a cut-off request or an answer without Retry-After


@dataclass(frozen=True)
class Accepted:
    step: Step
    event_id: str


@dataclass
class Pacer:
    rate: float
    _next: float = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + 1 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass
class Load:
    total: int
    accepted: dict[int, Accepted] = field(default_factory=dict)  # by step seq
    answers: Counter[str] = field(default_factory=Counter)  # status code or exception name
    no_retry_after: int = 0  # 503s without Retry-After
    abandoned: int = 0  # steps never accepted before the load's deadline
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def unavailable(self) -> int:
        return self.answers["503"]

    @property
    def other_5xx(self) -> int:
        return sum(n for code, n in self.answers.items() if code.startswith("5") and code != "503")

    async def reached(self, fraction: float) -> None:
        """Return once `fraction` of the planned events have been accepted."""
        async with self._progress:
            await self._progress.wait_for(lambda: len(self.accepted) >= fraction * self.total)

    async def record(self, accepted: Accepted) -> None:
        async with self._progress:
            self.accepted[accepted.step.seq] = accepted
            self._progress.notify_all()


async def send_load(
    http: httpx2.AsyncClient,
    web_urls: Sequence[str],
    chains: list[Chain],
    *,
    load: Load,
    clients: int,
    rate: float,
    deadline: float,
) -> None:
    """Send every chain, recording into `load`; a step not accepted by `deadline`
    (monotonic) is abandoned."""
    queue = iter(chains)  # shared: each chain goes to exactly one client
    urls = itertools.cycle(web_urls)
    pacer = Pacer(rate)

    async def send(step: Step) -> bool:
        while time.monotonic() < deadline:
            await pacer.wait()
            tenant = step.target.tenant
            try:
                response = await http.post(
                    f"{next(urls)}/v1/alerts",
                    json=step.body(),
                    headers={"Authorization": f"Bearer {tenant.ingest_key}"},
                )
            except httpx2.TransportError as exc:
                load.answers[type(exc).__name__] += 1
                await asyncio.sleep(RETRY_PAUSE)
                continue
            code = response.status_code
            load.answers[str(code)] += 1
            if code == 202:
                event_id = str(response.json()["events"][0]["id"])
                await load.record(Accepted(step, event_id))
                return True
            if 400 <= code < 500:
                raise SetupError(f"ingest answered {code}: {response.text[:300]}")
            await asyncio.sleep(_retry_after(response, load))
        return False

    async def client() -> None:
        for chain in queue:
            for position, step in enumerate(chain):
                if not await send(step):
                    # The rest of the chain must not overtake the step that never got in.
                    load.abandoned += len(chain) - position
                    break

    await asyncio.gather(*(client() for _ in range(clients)))


def _retry_after(response: httpx2.Response, load: Load) -> float:
    raw = response.headers.get("retry-after")
    if response.status_code != 503:
        return RETRY_PAUSE
    if raw is None or not raw.strip().isdigit():
        load.no_retry_after += 1
        return RETRY_PAUSE
    return min(float(raw), RETRY_AFTER_CAP)
