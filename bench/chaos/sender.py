"""The load: chains of events sent by concurrent clients, the way a careful sender sends.

A client sends one chain at a time, one step after another, to the web processes in turn.
A 202 is recorded with the event id it returns. A 503 is retried after its `Retry-After` (an
answer without one is counted: the product promises it). A request cut off by a killed
process is retried too: it may have been committed without its answer getting out, so the
retry may add a second copy of the same event (PagerDuty deduplicates it, and the ordering
check allows it). Other 5xx are counted and retried; a 4xx means the run is set up wrongly.
Requests leave at most `rate` per second in total, retries included.

`send_batches` sends a backlog the fast way: `{"alerts": […]}` batches of one tenant's steps of
one rank (every trigger, then every acknowledge, then every resolve), so that each chain is
still accepted in its order.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx2

from bench.chaos.plan import Chain, Step
from bench.stack import SetupError

RETRY_AFTER_CAP = 10.0
RETRY_PAUSE = 0.5  # after a cut-off request or an answer without Retry-After


BATCH = 500  # alerts per request in send_batches: well under ingest's 1000 and 1 MiB


@dataclass(frozen=True)
class Accepted:
    step: Step
    event_id: str
    answered_at: float = 0.0  # the wall clock (the sandbox's too) when the 202 came back


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
    slowest: float = 0.0  # the longest any ingest request took to be answered (or cut off)
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def unavailable(self) -> int:
        return self.answers["503"]

    @property
    def internal_errors(self) -> int:
        """500s: the product failed a request instead of saying it cannot take it now."""
        return self.answers["500"]

    @property
    def other_5xx(self) -> int:
        return sum(n for code, n in self.answers.items() if code.startswith("5") and code != "503")

    def timed(self, started: float) -> None:
        self.slowest = max(self.slowest, time.monotonic() - started)

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
            started = time.monotonic()
            try:
                response = await http.post(
                    f"{next(urls)}/v1/alerts",
                    json=step.body(),
                    headers={"Authorization": f"Bearer {tenant.ingest_key}"},
                )
            except httpx2.TransportError as exc:
                load.timed(started)
                load.answers[type(exc).__name__] += 1
                await asyncio.sleep(RETRY_PAUSE)
                continue
            load.timed(started)
            code = response.status_code
            load.answers[str(code)] += 1
            if code == 202:
                event_id = str(response.json()["events"][0]["id"])
                await load.record(Accepted(step, event_id, time.time()))
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


async def send_batches(
    http: httpx2.AsyncClient,
    web_url: str,
    chains: list[Chain],
    *,
    load: Load,
    clients: int,
    deadline: float,
) -> None:
    """Send every step of `chains` in batches (see the module's docstring); a batch not
    accepted by `deadline` (monotonic) is abandoned, and so are the later steps of its chains."""
    by_rank: dict[int, dict[str, list[Step]]] = {}
    for chain in chains:
        for step in chain:
            tenant = step.target.tenant.ingest_key
            by_rank.setdefault(step.rank, {}).setdefault(tenant, []).append(step)
    failed: set[str] = set()  # dedup keys with a step that never got in

    async def send(batch: list[Step]) -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                response = await http.post(
                    f"{web_url}/v1/alerts",
                    json={"alerts": [step.body() for step in batch]},
                    headers={"Authorization": f"Bearer {batch[0].target.tenant.ingest_key}"},
                )
            except httpx2.TransportError as exc:
                load.timed(started)
                load.answers[type(exc).__name__] += 1
                await asyncio.sleep(RETRY_PAUSE)
                continue
            load.timed(started)
            code = response.status_code
            load.answers[str(code)] += 1
            if code == 202:
                answered_at = time.time()
                events = response.json()["events"]
                if len(events) != len(batch):
                    raise SetupError(f"{len(batch)} alerts made {len(events)} events")
                for step, event in zip(batch, events, strict=True):
                    await load.record(Accepted(step, str(event["id"]), answered_at))
                return
            if 400 <= code < 500:
                raise SetupError(f"ingest answered {code}: {response.text[:300]}")
            await asyncio.sleep(_retry_after(response, load))
        failed.update(step.dedup_key for step in batch)

    for rank in sorted(by_rank):
        batches = [
            [step for step in steps[i : i + BATCH] if step.dedup_key not in failed]
            for steps in by_rank[rank].values()
            for i in range(0, len(steps), BATCH)
        ]
        queue = iter([batch for batch in batches if batch])
        await asyncio.gather(*(_each(queue, send) for _ in range(clients)))
    load.abandoned += load.total - len(load.accepted)


async def _each(queue: Iterator[list[Step]], send: Callable[[list[Step]], Awaitable[None]]) -> None:
    for batch in queue:  # shared: each batch goes to exactly one client
        await send(batch)


def _retry_after(response: httpx2.Response, load: Load) -> float:
    raw = response.headers.get("retry-after")
    if response.status_code != 503:
        return RETRY_PAUSE
    if raw is None or not raw.strip().isdigit():
        load.no_retry_after += 1
        return RETRY_PAUSE
    return min(float(raw), RETRY_AFTER_CAP)
