"""The sender: claims due callbacks, signs and posts them, records every attempt.

Beside the dispatcher in every process that runs background work (`pdconnect serve`'s web
processes and `pdconnect worker`), on an HTTP client of its own. Any number of senders share
the table safely: a claim leases callbacks FOR UPDATE SKIP LOCKED, each claim takes a new
fencing token, and what a sender records after its send changes the callback only while that
token is still the callback's (a sender that stalled past its lease records its attempt and
nothing else). A send ends within its timeout, far inside the lease, so two senders never send
one callback at the same time.

Order: only the oldest unfinished callback of each (tenant, order key) is claimable, so one
alert's callbacks reach the receiver one at a time, in the order they were recorded, across
retries, senders and restarts. Isolation: a sender has at most `per_host` sends in flight to
one receiver host and `concurrency` in all, and claims nothing for a host that is full, so a
receiver that hangs or fails costs other tenants' receivers nothing.

Answers: 2xx delivered; 408, 429, 5xx, a redirect (never followed) or no answer (a timeout, a
refused or broken connection) is tried again with capped exponential backoff and full jitter
(429 waits at least its Retry-After) until the callback is `retry_for` old, then it fails;
any other 4xx fails at once (the receiver said it will never take it).

Wake-up: a short poll (`poll_interval`, 1 s) and the end of each send, not LISTEN/NOTIFY. A
callback is news for the vendor's product, not a page: a second is soon enough. The poll needs
no connection of its own to hold and re-open when the database restarts, and costs one probe of
the index of unfinished callbacks when there is nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx2
from databases import Database

from app.callbacks import signing, store
from app.config.model import Config
from app.crypto import Vault
from app.db.errors import DATABASE_UNREACHABLE
from app.db.pool import in_own_task

log = logging.getLogger("pdconnect.callbacks")

# What of the receiver's answer is kept on the attempt.
ANSWER_KEPT = 300
# While the database is away, claiming is tried again after this long, doubling to the cap.
AWAY_PAUSE_FIRST = 0.5
AWAY_PAUSE_CAP = 5.0
# Finished callbacks are removed after the retention period, this many at a time, this often.
RETENTION_BATCH = 500
RETENTION_SECONDS = 60.0


@dataclass(frozen=True)
class CallbackConfig:
    url: str | None = None
    secrets: tuple[bytes, ...] = ()
    retry_for: timedelta = timedelta(hours=24)
    retry_base: timedelta = timedelta(seconds=5)
    retry_cap: timedelta = timedelta(hours=1)
    timeout: timedelta = timedelta(seconds=10)
    concurrency: int = 16
    per_host: int = 4
    poll_interval: timedelta = timedelta(seconds=1)
    # Finished callbacks are kept this long (None: for ever), as events are.
    retention: timedelta | None = timedelta(days=30)

    @property
    def lease(self) -> timedelta:
        """Well past a send's timeout: the time to record its outcome stays inside it."""
        return self.timeout * 2 + timedelta(seconds=30)


def callback_config(config: Config) -> CallbackConfig:
    return CallbackConfig(
        url=config.callback_url,
        secrets=config.callback_secret,
        retry_for=timedelta(hours=config.callback_retry_hours),
        retry_base=timedelta(seconds=config.callback_retry_base_seconds),
        retry_cap=timedelta(seconds=config.callback_retry_cap_seconds),
        timeout=timedelta(seconds=config.callback_timeout_seconds),
        retention=timedelta(days=config.retention_days) if config.retention_days else None,
    )


def retry_delay(config: CallbackConfig, attempts: int, rng: random.Random) -> timedelta:
    """Wait after the `attempts`-th failed attempt: full jitter under a doubling ceiling, never
    below half the base (a retry is never immediate)."""
    base = config.retry_base.total_seconds()
    ceiling = min(config.retry_cap.total_seconds(), base * 2 ** min(attempts - 1, 32))
    return timedelta(seconds=max(base / 2, rng.uniform(0, ceiling)))


def host_of(url: str) -> str:
    return urlsplit(url).netloc.lower()


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered, failed, retry
    status_code: int | None
    error: str | None
    retry_after: float | None = None


def judge(status_code: int, answer: str, retry_after: str | None) -> Outcome:
    said = f"HTTP {status_code}" + (f": {answer}" if answer else "")
    if 200 <= status_code < 300:
        return Outcome("delivered", status_code, None)
    if status_code in (408, 429) or status_code >= 500 or 300 <= status_code < 400:
        wait = None
        if retry_after is not None and retry_after.strip().isdigit():
            wait = float(retry_after.strip())
        if 300 <= status_code < 400:
            said += " (redirects are not followed: set the receiver's final URL)"
        return Outcome("retry", status_code, said, wait)
    return Outcome("failed", status_code, f"{said} (not retried: the receiver refused it)")


class Sender:
    def __init__(
        self,
        *,
        db: Database,
        http: httpx2.AsyncClient,
        vault: Vault,
        config: CallbackConfig,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.http = http
        self.vault = vault
        self.config = config
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._host_in_flight: Counter[str] = Counter()
        self._away_pause = AWAY_PAUSE_FIRST
        self._swept_at = -RETENTION_SECONDS

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        published = False
        try:
            while not stop.is_set():
                try:
                    if not published:
                        await in_own_task(
                            store.publish_defaults(self.db, url_set=self.config.url is not None)
                        )
                        published = True
                    await self._sweep()
                    if await self.claim_once():
                        continue
                except DATABASE_UNREACHABLE as exc:
                    log.warning(
                        "callbacks wait for the database (%s); again in %g s",
                        type(exc).__name__,
                        self._away_pause,
                    )
                    await asyncio.sleep(self._away_pause)
                    self._away_pause = min(self._away_pause * 2, AWAY_PAUSE_CAP)
                    continue
                except Exception:
                    log.exception("sending callbacks failed; trying again shortly")
                    await asyncio.sleep(self.config.poll_interval.total_seconds())
                    continue
                self._away_pause = AWAY_PAUSE_FIRST
                await self._sleep(stopper)
        finally:
            stopper.cancel()
            if self._in_flight:
                await asyncio.wait(self._in_flight, timeout=self.config.lease.total_seconds())

    async def claim_once(self) -> int:
        """Claim what is due and there is room for, and start sending it."""
        room = self.config.concurrency - len(self._in_flight)
        if room <= 0:
            return 0
        self._wake.clear()
        rooms = {
            host: max(self.config.per_host - n, 0) for host, n in self._host_in_flight.items()
        }
        claimed = await in_own_task(
            store.claim(
                self.db,
                limit=room,
                lease=self.config.lease,
                global_url=self.config.url,
                per_host=self.config.per_host,
                rooms=rooms,
            )
        )
        for callback in claimed:
            host = "" if callback.url is None else host_of(callback.url)
            # Counted before any await, so the next claim sees the room taken.
            self._host_in_flight[host] += 1
            task = asyncio.create_task(self._deliver(callback, host))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        # The next callback of the same key may be claimable now.
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

    async def _sweep(self) -> None:
        retention = self.config.retention
        now = time.monotonic()
        if retention is None or now - self._swept_at < RETENTION_SECONDS:
            return
        self._swept_at = now
        await in_own_task(
            store.remove_finished(self.db, older_than=retention, batch=RETENTION_BATCH)
        )

    async def _deliver(self, callback: store.Claimed, host: str) -> None:
        try:
            outcome, attempt = await self._send(callback)
            await in_own_task(self._record(callback, outcome, attempt))
        except Exception as exc:
            # The lease brings the callback back; nothing is lost.
            if isinstance(exc, DATABASE_UNREACHABLE):
                log.warning("recording callback %s waits for its lease (%s)", callback.id, exc)
            else:
                log.exception("sending callback %s failed; it will be tried again", callback.id)
        finally:
            self._host_in_flight[host] -= 1
            if self._host_in_flight[host] <= 0:
                del self._host_in_flight[host]

    def _keys(self, callback: store.Claimed) -> list[bytes]:
        if not callback.own_receiver:
            return list(self.config.secrets)
        assert callback.secret_enc is not None
        keys = [signing.key_of(self.vault.decrypt(callback.secret_enc))]
        if callback.previous_secret_enc is not None and callback.previous_valid:
            keys.append(signing.key_of(self.vault.decrypt(callback.previous_secret_enc)))
        return keys

    async def _send(self, callback: store.Claimed) -> tuple[Outcome, store.Attempt]:
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        outcome = await self._post(callback, started_at)
        attempt = store.Attempt(
            callback_id=callback.id,
            started_at=started_at,
            duration_ms=int((time.perf_counter() - started) * 1000),
            status_code=outcome.status_code,
            error=outcome.error,
        )
        return outcome, attempt

    async def _post(self, callback: store.Claimed, sent_at: datetime) -> Outcome:
        if callback.url is None:
            return Outcome("failed", None, "no callback URL is configured for this tenant")
        keys = self._keys(callback)
        if not keys:
            return Outcome("failed", None, "no callback secret is configured")
        body = callback.body.encode("utf-8")
        headers = {
            **signing.headers(keys, str(callback.id), sent_at, body),
            "content-type": "application/json",
        }
        seconds = self.config.timeout.total_seconds()
        try:
            # One deadline for the whole exchange: the client's timeouts bound each phase
            # alone, and an answer trickling in would satisfy them for ever.
            async with asyncio.timeout(seconds):
                request = self.http.build_request(
                    "POST", callback.url, content=body, headers=headers
                )
                response = await self.http.send(request, stream=True)
                try:
                    answer = await _first_bytes(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            return Outcome("retry", None, f"no answer within {seconds:g} s")
        except httpx2.TransportError as exc:
            return Outcome("retry", None, f"could not reach the receiver: {type(exc).__name__}")
        except httpx2.HTTPError as exc:
            return Outcome("failed", None, f"the callback URL cannot be used: {exc}")
        return judge(response.status_code, answer, response.headers.get("retry-after"))

    async def _record(
        self, callback: store.Claimed, outcome: Outcome, attempt: store.Attempt
    ) -> None:
        async with self.db.transaction():
            await store.record_attempt(self.db, attempt)
            if outcome.status == "delivered":
                current = await store.finish(
                    self.db, callback, status="delivered", last_status=outcome.status_code,
                    error=None,
                )
            elif outcome.status == "failed":
                current = await store.finish(
                    self.db, callback, status="failed", last_status=outcome.status_code,
                    error=outcome.error,
                )
            else:
                current = await self._retry_or_give_up(callback, outcome)
        if not current:
            log.warning("callback %s was answered after its lease passed on", callback.id)

    async def _retry_or_give_up(self, callback: store.Claimed, outcome: Outcome) -> bool:
        error = outcome.error or ""
        if datetime.now(UTC) - callback.created_at >= self.config.retry_for:
            hours = self.config.retry_for.total_seconds() / 3600
            return await store.finish(
                self.db,
                callback,
                status="failed",
                last_status=outcome.status_code,
                error=f"gave up after {hours:g} hours of retries; last: {error}",
            )
        delay = retry_delay(self.config, callback.attempts + 1, self.rng)
        if outcome.retry_after is not None:
            cap = self.config.retry_cap.total_seconds()
            delay = max(delay, timedelta(seconds=min(outcome.retry_after, cap)))
        return await store.retry_later(
            self.db, callback, delay=delay, last_status=outcome.status_code, error=error
        )


async def _first_bytes(response: httpx2.Response) -> str:
    """The start of the receiver's answer, for the operator; the rest is not read."""
    kept = b""
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= ANSWER_KEPT:
            break
    text = kept[:ANSWER_KEPT].decode("utf-8", "replace")
    return " ".join(text.split())


async def run_sender(db: Database, vault: Vault, config: Config, stop: asyncio.Event) -> None:
    """A sender on an HTTP client of its own (a receiver that hangs holds none of the
    dispatcher's connections), until `stop` is set."""
    callbacks = callback_config(config)
    # Redirects are not followed (new_http_client's default): a callback goes where the
    # operator said, or is retried.
    http = httpx2.AsyncClient(
        limits=httpx2.Limits(
            max_connections=callbacks.concurrency, max_keepalive_connections=callbacks.concurrency
        ),
        timeout=httpx2.Timeout(callbacks.timeout.total_seconds()),
        follow_redirects=False,
        headers={"User-Agent": "pdconnect-callbacks"},
    )
    try:
        await Sender(db=db, http=http, vault=vault, config=callbacks).run(stop)
    finally:
        await http.aclose()
