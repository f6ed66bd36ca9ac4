"""The dispatcher: claims due events, spends each key's budget, sends, records the answer.

Any number of dispatchers (threads of one process, processes, machines) share the outbox:
claims are leased with SKIP LOCKED, budgets are decided under a per-key row lock, and the
ordering rule lives in the claim query (see store.py). A dispatcher sleeps until PostgreSQL
notifies it of new events, an in-flight send finishes, or the earliest retry falls due.

A dispatcher that dies mid-send loses nothing: its lease expires and another one sends the
event again (PagerDuty deduplicates a repeated trigger by its dedup_key).

A dispatcher outlives its database: while PostgreSQL is away it backs off and tries again,
its LISTEN connection included, and goes on in the same process once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx2
from databases import Database

from app.crypto import Vault
from app.db import DATABASE_UNREACHABLE, asyncpg_dsn, in_own_task
from app.dispatch import observe, store
from app.dispatch.policy import DispatchConfig, rate_limited_pause, retry_delay
from app.dispatch.store import NOTIFY_CHANNEL, Claimed
from app.observability.logs import bound
from app.pagerduty.events import EventAnswer, send_event

log = logging.getLogger("pdconnect.dispatch")

# How the LISTEN connection shows in pg_stat_activity.
LISTENER_NAME = "pdconnect dispatcher"
# After the LISTEN connection is lost, reconnect after this long, doubling up to the cap; the
# poll (DispatchConfig.poll_interval) finds new events meanwhile, only later.
LISTEN_RETRY_FIRST = 0.5
LISTEN_RETRY_CAP = 5.0
# A connection whose server vanished without closing it would wait for notifications forever:
# it is asked a question this often, and dropped when the answer takes longer than the timeout.
LISTEN_CHECK_SECONDS = 30.0
LISTEN_CHECK_TIMEOUT = 5.0
# While the database is away, claiming is tried again after this long, doubling up to the cap.
AWAY_PAUSE_FIRST = 0.5
AWAY_PAUSE_CAP = 5.0


class Dispatcher:
    def __init__(
        self,
        *,
        db: Database,
        http: httpx2.AsyncClient,
        vault: Vault,
        database_url: str,
        config: DispatchConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.http = http
        self.vault = vault
        self.database_url = database_url
        self.config = config or DispatchConfig()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._away_pause = AWAY_PAUSE_FIRST

    def wake(self, *_: Any) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        listening = asyncio.create_task(self._listen(stop))
        try:
            while not stop.is_set():
                claimed = await self._claim_some()
                if claimed:
                    continue
                await self._sleep(stopper)
        finally:
            stopper.cancel()
            # Stop claiming; let what is in flight finish (each send is bounded by its
            # timeout), so no attempt is left open.
            if self._in_flight:
                await asyncio.wait(self._in_flight, timeout=self.config.lease.total_seconds())
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    async def _listen(self, stop: asyncio.Event) -> None:
        """Hold a LISTEN connection for as long as the dispatcher runs, opening a new one
        whenever the database drops or refuses it."""
        pause = LISTEN_RETRY_FIRST
        while not stop.is_set():
            try:
                await self._listen_until_lost()
            except DATABASE_UNREACHABLE as exc:
                log.warning(
                    "no LISTEN connection (%s); reconnecting in %g s", type(exc).__name__, pause
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                pause = min(pause * 2, LISTEN_RETRY_CAP)
            else:
                pause = LISTEN_RETRY_FIRST

    async def _listen_until_lost(self) -> None:
        conn = await asyncpg.connect(
            asyncpg_dsn(self.database_url), server_settings={"application_name": LISTENER_NAME}
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self.wake)
            # Events enqueued while nobody listened are due now.
            self.wake()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), LISTEN_CHECK_SECONDS)
                if not lost.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), LISTEN_CHECK_TIMEOUT)
            log.warning("the LISTEN connection was closed by the database; reconnecting")
        finally:
            conn.terminate()

    async def _claim_some(self) -> int:
        free = self.config.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        self._wake.clear()
        try:
            events = await in_own_task(
                store.claim(
                    self.db,
                    batch=min(free, self.config.batch_size),
                    per_tenant=self.config.per_tenant_scan,
                    lease=self.config.lease,
                )
            )
        except DATABASE_UNREACHABLE as exc:
            # Nothing can be claimed, and nothing is lost: look again, less often as it lasts.
            log.warning(
                "the database is unreachable (%s); claiming again in %g s",
                type(exc).__name__,
                self._away_pause,
            )
            await asyncio.sleep(self._away_pause)
            self._away_pause = min(self._away_pause * 2, AWAY_PAUSE_CAP)
            return 0
        except Exception:
            # A dispatcher that stopped would stop every page of this process; say it loudly
            # and keep going.
            log.exception("claiming events failed")
            await asyncio.sleep(5.0)
            return 0
        self._away_pause = AWAY_PAUSE_FIRST
        for event in events:
            task = asyncio.create_task(self._deliver(event))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(events)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        # A finished send frees a slot and may unblock the next event of its dedup key.
        self._wake.set()

    async def _sleep(self, stopper: asyncio.Task[Any]) -> None:
        timeout = self.config.poll_interval.total_seconds()
        with contextlib.suppress(*DATABASE_UNREACHABLE):
            due = await in_own_task(store.next_due_in(self.db))
            if due is not None:
                timeout = min(timeout, max(due.total_seconds(), 0.01))
        waker = asyncio.create_task(self._wake.wait())
        await asyncio.wait({waker, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waker.cancel()

    async def _deliver(self, event: Claimed) -> None:
        try:
            with bound(event_id=str(event.id)):
                await self._deliver_one(event)
        except DATABASE_UNREACHABLE as exc:
            # Its lease brings the event back once the database does; no traceback needed.
            log.warning(
                "delivering event %s was cut off by the database (%s); it will be retried",
                event.id,
                type(exc).__name__,
            )
        except Exception:
            # The lease brings the event back; the traceback says why it had to.
            log.exception("delivering event %s failed; it will be retried", event.id)

    async def _deliver_one(self, event: Claimed) -> None:
        target = (
            None if event.service_id is None else await store.target_of(self.db, event.service_id)
        )
        if target is None:
            await store.mark_final(
                self.db, event.id, status="cancelled", error="its service was removed"
            )
            observe.not_sent("cancelled", "service_removed")
            return
        if target.health != "healthy":
            await store.hold(self.db, event.id, error=f"held: the service is {target.health}")
            observe.not_sent("held", f"service_{target.health}")
            return
        attempt_id = await store.reserve_budget(
            self.db,
            event_id=event.id,
            routing_key_hash=event.routing_key_hash,
            limit=target.rate_limit_per_minute,
            window=self.config.budget_window,
        )
        if attempt_id is None:
            observe.budget_spent()
            return
        key_field = "service_key" if event.api == "v1" else "routing_key"
        body = {**event.body, key_field: self.vault.decrypt(target.routing_key_enc)}
        answer = await send_event(
            self.http, target.events_url, api=event.api, kind=event.kind, body=body
        )
        await self._record(event, attempt_id, answer)

    async def _record(self, event: Claimed, attempt_id: int, answer: EventAnswer) -> None:
        outcome = observe.attempt_finished(answer)
        error = None if answer.outcome == "accepted" else _describe(answer)
        async with self.db.transaction():
            await store.finish_attempt(
                self.db,
                attempt_id,
                outcome=outcome,
                http_status=answer.status,
                latency_ms=answer.latency_ms,
                response=answer.response,
                error=error,
            )
            assert error is not None or answer.outcome == "accepted"
            if answer.outcome == "accepted":
                await store.mark_delivered(self.db, event.id, event.routing_key_hash)
                observe.paged(event.created_at)
                if event.attempts > 0:
                    # A retry got through: the key's other retries go now, not at their
                    # backoff's end. A first attempt proves nothing of them (one event that
                    # PagerDuty keeps failing must not ride on every other event's success).
                    await store.retry_key_now(self.db, event.routing_key_hash)
            elif answer.outcome == "rejected":
                await store.mark_final(
                    self.db, event.id, status="failed", error=error or "", pd_errors=answer.errors
                )
            elif answer.outcome == "key_rejected":
                # One such answer may be PagerDuty's hiccup: retried like a transient error,
                # until the key has been refused enough times in a row to be believed.
                rejections = await store.count_key_rejection(self.db, event.routing_key_hash)
                if rejections >= self.config.key_rejections_to_unhealthy:
                    await store.hold(self.db, event.id, error=error or "")
                    await store.mark_key_unhealthy(
                        self.db, event.routing_key_hash, error=error or ""
                    )
                    log.warning("a routing key was rejected repeatedly; its services are unhealthy")
                else:
                    await self._retry_or_give_up(event, error or "")
            elif answer.outcome == "rate_limited":
                await store.pause_key(
                    self.db,
                    event.routing_key_hash,
                    lambda level: rate_limited_pause(
                        self.config, level, answer.retry_after, self.rng
                    ),
                )
                # Not the event's fault: it goes back with no delay of its own.
                await store.schedule_retry(self.db, event.id, delay=timedelta(0), error=error or "")
            else:
                await self._retry_or_give_up(event, error or "")

    async def _retry_or_give_up(self, event: Claimed, error: str) -> None:
        age = datetime.now(UTC) - event.created_at
        if age > self.config.give_up_after:
            hours = self.config.give_up_after.total_seconds() / 3600
            await store.mark_final(
                self.db,
                event.id,
                status="failed",
                error=f"gave up after {hours:g} hours of retries; last: {error}",
            )
            observe.not_sent("failed", "gave_up")
            return
        delay = retry_delay(self.config, event.attempts + 1, self.rng)
        await store.schedule_retry(self.db, event.id, delay=delay, error=error)


def _describe(answer: EventAnswer) -> str:
    status = f"HTTP {answer.status}" if answer.status is not None else "no answer"
    detail = "; ".join(answer.errors) or answer.message
    return f"{status}: {detail}" if detail else status
