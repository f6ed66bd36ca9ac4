"""The dispatcher: claims due events, spends each key's budget, sends, records the answer.

Any number of dispatchers (threads of one process, processes, machines) share the outbox:
claims are leased with SKIP LOCKED, a key's budget is spent by one conditional UPDATE of its
row (store.reserve_budget), and the ordering rule lives in the claim query
(app/outbox/claims.py). A worker holds up to PIPELINE times its concurrency in events (claimed
in batches, waiting for a slot) and has at most its concurrency of sends going at once (a slot
is taken before the budget is spent, so that a send reaches PagerDuty when its budget says).
Its database pool and its HTTP client are its own (app/composition.py), the client keeping a
connection alive per send in flight. Sends going at once spend their budgets in one statement
and record their deliveries in one more (app/db/group.py's Batcher, one batch of a kind at a
time, so that a batch holds what came while the previous one ran): under load a send's slot
waits for one round trip shared with its neighbours, not for its own turn behind theirs.

What a delivered event costs is mostly per statement, not per row, so the statements are made
few and large: a claim waits for half the worker's room while the sends still have events
enough waiting (a worker that keeps up never waits), asks each key for as many events as keys
gave the last claim (up to the cap per key), and is followed by one read of the targets and
one record of the keys' hosts for the whole claim. bench/dispatch.py prints what is left, as
each process's CPU per event.

A dispatcher sleeps until PostgreSQL notifies it of new events, an in-flight send finishes,
or the earliest retry falls due. What PagerDuty's answer does to the event and its key is
settle.py's.

A dispatcher that dies mid-send loses nothing: its lease expires and another one sends the
event again (PagerDuty deduplicates a repeated trigger by its dedup_key). One that only
stalls is fenced (app/outbox): each send ends under one deadline before its lease does
(connect, write and the whole answer), and what it records afterwards changes its event only
while the event is still its own.

Bounded in memory: the bodies a worker holds (claimed, not yet finished) add up to at most
`max_held_bytes` and one event more, whoever sent them. Each claim is asked for no more than
the room left (`Claimed.body_bytes`, counted by the claim itself), and none is made while
less than half the bound is free, unless the worker holds nothing: a claim with room for one
event would take only the oldest of the tenants' first turns, and a storm of large events
begun earlier would go before another tenant's page until all of it had gone.

Isolated: a routing key has at most `max_in_flight_per_key` sends in flight across all workers,
a PagerDuty host at most `max_in_flight_per_host` in each worker; claims skip what is full
rather than wait for it, and a key whose sends keep timing out rests like a 429'd key. A key,
or a region, that hangs costs the others nothing but the slots its cap allows.

A dispatcher outlives its database: while PostgreSQL is away it backs off and tries again,
its LISTEN connection included, and goes on in the same process once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx2
from databases import Database

from app.crypto import Vault
from app.db.errors import DATABASE_UNREACHABLE
from app.db.group import Batcher
from app.db.pool import in_own_task
from app.dispatch import observe, store
from app.dispatch.policy import DispatchConfig
from app.dispatch.settle import Settler, describe
from app.dispatch.slots import PrioritySlots
from app.observability.logs import bound
from app.outbox import claims, outcomes, ready, wakeups
from app.outbox.claims import Claimed
from app.outbox.states import EventStatus, ServiceHealth
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
# Begins the error of an attempt whose answer came after its lease had passed to another claim.
# How often a dispatcher removes the ready keys left with nothing pending, and adds any key with
# pending events that has no row (see app/outbox/ready.py).
FORGET_IDLE_SECONDS = 1.0
RESTORE_LOST_SECONDS = 300.0
# Events in a worker's hands (claimed, waiting for a slot, sending, being recorded), as a
# multiple of its concurrency (the sends going at once); and how long a claim waits for half
# that room while the sends have events enough (a new key's page waits for a claim at most
# this long, and then for no other key's events: slots.py).
PIPELINE = 4
GATHER_SECONDS = 0.01
# How long sends cancelled at stop get to unwind (their connections go back to the pool).
LEFTOVER_SECONDS = 5.0
# A worker's sends at once are its concurrency (16 by default): one statement rarely has more.
SENDS_PER_STATEMENT = 128
# How long a worker keeps a service's target (where its events go) before reading it again.
TARGET_SECONDS = 5.0
# Decrypted routing keys a worker keeps at most (when full, it forgets them all and starts over).
OPENED_KEYS_KEPT = 10_000
STALE_NOTE = "answered after its lease had passed on; the event was left as it was. "


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
        # Set once the LISTEN connection is up, from then on: new events wake this dispatcher.
        self.listening = asyncio.Event()
        # Keys resting, with the monotonic time their rest ends (see `wake`).
        self._resting: dict[str, float] = {}
        self._room_freed = asyncio.Event()
        # Sends on the wire at once: the configured concurrency.
        self._sends = PrioritySlots(self.config.concurrency)
        # Sends on the wire at once to each PagerDuty host (`max_in_flight_per_host`); events
        # in hand for a host are up to PIPELINE times that (`_host_in_flight`).
        self._host_sends: dict[str, PrioritySlots] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        # Events in hand per routing key: an event's rank for a send slot is how many of its
        # key's were in hand before it (slots.py).
        self._key_in_hand: Counter[str] = Counter()
        # The events in hand not yet on the wire (waiting for a send slot, or for the
        # statements before it): what the sends have to go on with.
        self._waiting: set[UUID] = set()
        # Bytes of the bodies of the events in hand (`Claimed.body_bytes`): added when a claim
        # returns, taken off when the event's task ends (`_done`), however it ends.
        self._held_bytes = 0
        # Sends this worker has in flight per PagerDuty host (the per-key count is the
        # database's, shared by every worker).
        self._host_in_flight: Counter[str] = Counter()
        # Events of a claim whose delivery has not begun yet, by the host they go to (as far
        # as this worker knows): each leaves the count when its delivery begins.
        self._starting: Counter[str] = Counter()
        # The PagerDuty host each routing key's events were last seen going to, as recorded in
        # dispatch_keys: a send writes it only when it changes.
        self._known_hosts: dict[str, str] = {}
        # Each service's target as last read, until its expiry (time.monotonic()).
        self._targets: dict[UUID, tuple[float, store.Target]] = {}
        # Routing keys as decrypted, by their ciphertext (see `_routing_key`).
        self._opened_keys: dict[str, str] = {}
        self._away_pause = AWAY_PAUSE_FIRST
        # Events the next claim asks of each key it looks at (see _learn_per_key).
        self._per_key = 1.0
        self._forgot_at = -math.inf
        self._restored_at = -math.inf
        self._settler = Settler(self.db, self.config, self.rng)
        # Concurrent sends spend their budgets in one statement, and record their deliveries
        # in one more (app/db/group.py's Batcher, with no transaction: each is one statement):
        # a send's slot then waits for one round trip, not for its own turn among its
        # neighbours'. One batch of a kind at a time: what comes while it runs forms the next
        # one, so under load the statements grow with the load instead of splitting it (two
        # at once halved each batch and doubled the statements, for a wait of one statement).
        self._spends: Batcher[Claimed, store.Spend] = Batcher(
            self._spend_apart, max_batch=SENDS_PER_STATEMENT, drains=1
        )
        self._deliveries: Batcher[tuple[Claimed, store.Delivery], bool] = Batcher(
            self._record_apart, max_batch=SENDS_PER_STATEMENT, drains=1
        )

    def wake(self, *notice: Any) -> None:
        """Claim again now. Called with nothing (by this worker), or as the LISTEN callback
        (connection, pid, channel, payload). A payload naming the routing keys that have new
        events, every one of them resting (its budget spent, or PagerDuty asked to wait), wakes
        no one: a claim could take none of their events before the rest ends, and the sleep
        already ends then. Under an alert storm on one key over its budget, every commit of
        ingest would otherwise cost a claim and a look at the next due time, for nothing."""
        payload = notice[3] if len(notice) > 3 else ""
        if isinstance(payload, str) and payload and self._all_resting(payload.split(",")):
            return
        self._wake.set()

    def _all_resting(self, keys: Sequence[str]) -> bool:
        now = time.monotonic()
        return all(self._resting.get(key, 0.0) > now for key in keys)

    async def run(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        listening = asyncio.create_task(self._listen(stop))
        upkeep = asyncio.create_task(self._upkeep(stop))
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
            # Whatever is still in hand after its lease is another worker's to take (fencing
            # refuses this one's late record): cancelled, so that nothing it waits on keeps a
            # connection of the pool (whose close would wait for it) or a task alive.
            leftover = [task for task in self._in_flight if not task.done()]
            for task in leftover:
                task.cancel()
            if leftover:
                await asyncio.wait(leftover, timeout=LEFTOVER_SECONDS)
            for task in (listening, upkeep):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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
        conn = await wakeups.listen(self.database_url, self.wake, application_name=LISTENER_NAME)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            # Events enqueued while nobody listened are due now.
            self.wake()
            self.listening.set()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), LISTEN_CHECK_SECONDS)
                if not lost.is_set():
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), LISTEN_CHECK_TIMEOUT)
            log.warning("the LISTEN connection was closed by the database; reconnecting")
        finally:
            conn.terminate()

    @property
    def held_bytes(self) -> int:
        """Bytes of the bodies of the events this worker holds now."""
        return self._held_bytes

    def _byte_room(self) -> int:
        """Bytes of bodies the next claim may bring in; 0 for no claim now. All of the bound
        when nothing is held (and the claim's first event whatever its size); else what is
        left of it, once that is at least half (see the module's docstring)."""
        bound = self.config.max_held_bytes
        if self._held_bytes <= 0:
            return max(bound, 1)
        room = bound - self._held_bytes
        return room if room * 2 >= bound else 0

    async def _claim_some(self) -> int:
        free = await self._gather_room()
        if free <= 0:
            return 0
        max_bytes = self._byte_room()
        self._wake.clear()
        if max_bytes <= 0:
            # Whatever woke this claim is seen by the next one, which an event in hand wakes
            # as it leaves (`_done`); no claim can be made before then (see `_sleep`).
            return 0
        # Taken before the claim: the lease the database grants ends no earlier than this plus
        # the lease, so a deadline counted from here never passes the lease's end.
        claimed_at = time.monotonic()
        try:
            events = await in_own_task(
                claims.claim(
                    self.db,
                    batch=min(free, self.config.batch_size),
                    per_tenant=self.config.per_tenant_scan,
                    lease=self.config.lease,
                    max_in_flight_per_key=self.config.max_in_flight_per_key,
                    host_rooms=self._host_rooms(),
                    keys=math.ceil(min(free, self.config.batch_size) / self._per_key),
                    max_bytes=max_bytes,
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
        # Held from here: each event's bytes leave with its task (`_done`).
        claimed_bytes = sum(e.body_bytes for e in events)
        self._held_bytes += claimed_bytes
        try:
            observe.claimed(len(events))
            self._learn_per_key(events)
            await self._know_targets(events)
        except BaseException:
            # Stopped before the events had their tasks: none of them is held here any more
            # (their leases bring them back), so none of their bytes is either.
            self._held_bytes -= claimed_bytes
            raise
        lease_ends = claimed_at + self.config.lease.total_seconds()
        for event in events:
            host = self._known_hosts.get(event.routing_key_hash)
            if host is not None:
                self._starting[host] += 1
            rank = self._key_in_hand[event.routing_key_hash]
            self._key_in_hand[event.routing_key_hash] += 1
            task = asyncio.create_task(self._deliver(event, lease_ends, host, rank))
            self._in_flight.add(task)
            self._waiting.add(event.id)
            task.add_done_callback(functools.partial(self._done, event))
        return len(events)

    async def _know_targets(self, events: Sequence[Claimed]) -> None:
        """Before a claim's events go: their services' targets this worker has not read lately,
        and their keys' hosts it has not recorded, in one statement each rather than one per
        event. Should either fail, each event reads and records its own (_deliver_one)."""
        now = time.monotonic()
        unread = {
            e.service_id
            for e in events
            if e.service_id is not None
            and (e.service_id not in self._targets or self._targets[e.service_id][0] <= now)
        }
        try:
            if unread:
                found = await in_own_task(store.targets_of(self.db, list(unread)))
                for service_id, target in found.items():
                    if target.health == ServiceHealth.HEALTHY:
                        self._targets[service_id] = (now + TARGET_SECONDS, target)
            hosts: dict[str, str] = {}
            for e in events:
                cached = self._targets.get(e.service_id) if e.service_id is not None else None
                if cached is None:
                    continue
                host = urlsplit(cached[1].events_url).netloc
                if self._known_hosts.get(e.routing_key_hash) != host:
                    hosts[e.routing_key_hash] = host
            if hosts:
                await in_own_task(store.learn_hosts(self.db, hosts))
                self._known_hosts.update(hosts)
        except DATABASE_UNREACHABLE:
            pass  # each event tries on its own, and says so
        except Exception:
            # The claim's events still go: each reads its own target and records its own host.
            log.exception("reading a claim's targets failed; its events read their own")

    def _learn_per_key(self, events: Sequence[Claimed]) -> None:
        """How many events to ask of each key the next claim looks at. A claim's cost is
        mostly per key looked at (its probes, its lock, its turn), so keys with several
        claimable events each (several alerts, each one's next event) are asked for fewer,
        larger shares: a claim whose keys gave their whole share asks twice as much of each
        next time, up to the cap of sends in flight per key (no key's share can pass it); one
        whose keys gave less asks what they gave, down to one event a key."""
        if not events:
            self._per_key = 1.0
            return
        given = len(events) / len({e.routing_key_hash for e in events})
        if given >= self._per_key:
            given = self._per_key * 2
        self._per_key = min(max(given, 1.0), float(self.config.max_in_flight_per_key))

    async def _gather_room(self) -> int:
        """How many events to claim now. Events in this worker's hands are up to PIPELINE times
        the concurrency (the sends themselves are `concurrency` at most, `_sends`), so that
        claims come in batches and an event's recording needs no send slot. A claim costs
        about the same for a few events as for fifty (its plan and its walk over the ready
        keys), so while the sends have events enough waiting for them it waits a moment
        (GATHER_SECONDS) for half the room, rather than claim a few events at a time. A
        worker that keeps up never waits here: its hands are nearly empty."""
        depth = self.config.concurrency * PIPELINE
        enough = max(1, depth // 2)
        deadline = time.monotonic() + GATHER_SECONDS
        while (
            self._in_flight
            and depth - len(self._in_flight) < enough
            and len(self._waiting) >= self.config.concurrency
        ):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._room_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room_freed.wait(), left)
        return depth - len(self._in_flight)

    async def _upkeep(self, stop: asyncio.Event) -> None:
        """The ready keys' upkeep, beside the claims rather than before them: a dispatcher
        woken by new events claims them at once, never behind a sweep."""
        while not stop.is_set():
            await self._tidy()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FORGET_IDLE_SECONDS)

    async def _tidy(self) -> None:
        """Now and then, the ready keys' upkeep (app/outbox/ready.py): keys left with nothing
        pending are removed, or every claim would probe them again; rarely, keys with pending
        events but no row (written by an older release) are added."""
        now = time.monotonic()
        try:
            if now - self._forgot_at >= FORGET_IDLE_SECONDS:
                self._forgot_at = now
                await in_own_task(ready.forget_idle_keys(self.db))
            if now - self._restored_at >= RESTORE_LOST_SECONDS:
                self._restored_at = now
                if added := await in_own_task(ready.restore_lost_keys(self.db)):
                    log.warning(
                        "%d routing keys with pending events were not ready; now they are", added
                    )
        except DATABASE_UNREACHABLE:
            pass  # the claim that follows says so, and backs off
        except Exception:
            log.exception("the ready keys' upkeep failed; it runs again later")

    def _host_rooms(self) -> dict[str, int]:
        """How many more events this worker may take in hand for each host it knows: a claim
        gives no host more, so its events are not put back for want of room. Events just
        claimed whose delivery has not started yet count too (`_starting`)."""
        cap = self.config.max_in_flight_per_host * PIPELINE
        hosts = set(self._known_hosts.values()) | set(self._host_in_flight)
        return {
            host: max(cap - self._host_in_flight[host] - self._starting[host], 0) for host in hosts
        }

    def _done(self, event: Claimed, task: asyncio.Task[None]) -> None:
        # Run as the task ends, whichever way (delivered, failed, put back, fenced out,
        # cancelled, raised): the one place an event leaves this worker's hands.
        self._held_bytes -= event.body_bytes
        self._in_flight.discard(task)
        self._waiting.discard(event.id)
        self._key_in_hand[event.routing_key_hash] -= 1
        if self._key_in_hand[event.routing_key_hash] <= 0:
            del self._key_in_hand[event.routing_key_hash]
        self._room_freed.set()
        # A finished send frees a slot and may unblock the next event of its dedup key.
        self._wake.set()

    async def _sleep(self, stopper: asyncio.Task[Any]) -> None:
        timeout = self.config.poll_interval.total_seconds()
        # With no room for bytes, nothing is claimed until an event in hand leaves, and that
        # wakes this worker: when the next events fall due does not matter until then.
        if self._byte_room() > 0:
            timeout = await self._until_due(longest=timeout)
        waker = asyncio.create_task(self._wake.wait())
        await asyncio.wait({waker, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waker.cancel()

    async def _until_due(self, *, longest: float) -> float:
        """How long to sleep, at most `longest`: until the earliest due event this worker could
        claim, as the database has it."""
        timeout = longest
        full = [host for host, room in self._host_rooms().items() if room == 0]
        with contextlib.suppress(*DATABASE_UNREACHABLE):
            due = await in_own_task(
                store.next_due_in(
                    self.db,
                    max_in_flight_per_key=self.config.max_in_flight_per_key,
                    full_hosts=full,
                )
            )
            if due.due_in is not None:
                timeout = min(timeout, max(due.due_in.total_seconds(), 0.01))
            # As the database has them now, across workers. A key whose rest is ended early
            # (its budget raised) is seen by the next claim, at the latest after poll_interval.
            now = time.monotonic()
            self._resting = {key: now + left for key, left in due.resting.items()}
        return timeout

    def _on_the_wire(self, event: Claimed) -> None:
        self._waiting.discard(event.id)
        self._room_freed.set()

    async def _deliver(
        self, event: Claimed, lease_ends: float, host: str | None, rank: int
    ) -> None:
        if host is not None:
            # Before any await: from here on the event counts in `_host_in_flight` instead.
            self._starting[host] -= 1
            if self._starting[host] <= 0:
                del self._starting[host]
        try:
            with bound(event_id=str(event.id)):
                await self._deliver_one(event, lease_ends, rank)
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

    async def _deliver_one(self, event: Claimed, lease_ends: float, rank: int) -> None:
        target = await self._target(event)
        if target is None:
            if await outcomes.mark_final(
                self.db, event, status=EventStatus.CANCELLED, error="its service was removed"
            ):
                observe.not_sent(EventStatus.CANCELLED, "service_removed")
            return
        if target.health != ServiceHealth.HEALTHY:
            if await outcomes.hold(self.db, event, error=f"held: the service is {target.health}"):
                observe.not_sent(EventStatus.HELD, f"service_{target.health}")
            return
        host = urlsplit(target.events_url).netloc
        if self._host_in_flight[host] >= self.config.max_in_flight_per_host * PIPELINE or (
            self._time_left(lease_ends) <= 0
        ):
            # Claimed before this worker knew the key's host, or held up until its lease is
            # nearly over: back to the queue untouched; the claims know the host from now on.
            if self._known_hosts.get(event.routing_key_hash) != host:
                await store.learn_host(self.db, event.routing_key_hash, host)
                self._known_hosts[event.routing_key_hash] = host
            await claims.release(self.db, event)
            return
        # Counted before any await: the check above and this count are one step.
        self._host_in_flight[host] += 1
        try:
            if self._known_hosts.get(event.routing_key_hash) != host:
                await store.learn_host(self.db, event.routing_key_hash, host)
                self._known_hosts[event.routing_key_hash] = host
            if not await self._wire_slot(host, lease_ends, rank):
                # Every slot stayed busy until the lease was nearly over: nothing was spent.
                await claims.release(self.db, event)
                return
            self._on_the_wire(event)
            try:
                # The budget is spent only once the send can go at once: a send spent and
                # then kept waiting would reach PagerDuty later than its budget counted it.
                attempt = await store.reserve_budget(
                    self.db,
                    event,
                    host=host,
                    window=self.config.budget_window,
                    max_in_flight=self.config.max_in_flight_per_key,
                    lease=self.config.lease,
                    spent=await self._spends.submit(event),
                )
                if attempt == "budget_spent":
                    observe.budget_spent()
                if attempt == "target_changed" and event.service_id is not None:
                    # Back in the queue; its next claim reads the service afresh.
                    self._targets.pop(event.service_id, None)
                if not isinstance(attempt, store.Attempt):
                    return
                key_field = "service_key" if event.api == "v1" else "routing_key"
                body = {**event.body, key_field: self._routing_key(attempt.routing_key_enc)}
                answer = await self._send(attempt.events_url, event, body, lease_ends)
            finally:
                self._sends.release()
                self._host_sends[host].release()
        finally:
            self._host_in_flight[host] -= 1
            if self._host_in_flight[host] <= 0:
                del self._host_in_flight[host]
        await self._record(event, attempt, answer)

    def _routing_key(self, encrypted: str) -> str:
        """The routing key a send carries. Decrypting it (Fernet: an HMAC and AES) was a few
        percent of a send's CPU, paid again for every event of the key; each ciphertext is
        opened once and kept in this process's memory, which already held the key during
        every send. A key encrypted anew (rotation) is a new ciphertext, opened afresh; the
        bound keeps a worker that sends for very many keys from growing without end."""
        key = self._opened_keys.get(encrypted)
        if key is None:
            key = self.vault.decrypt(encrypted)
            if len(self._opened_keys) >= OPENED_KEYS_KEPT:
                self._opened_keys.clear()
            self._opened_keys[encrypted] = key
        return key

    async def _target(self, event: Claimed) -> store.Target | None:
        """The event's service, as this worker last read it (within TARGET_SECONDS). What a
        send must have current (health, key, URL, budget) is read again by the statement that
        spends it (store.reserve_budget); this one only decides where to look, so a service's
        events need not read it once each."""
        if event.service_id is None:
            return None
        now = time.monotonic()
        cached = self._targets.get(event.service_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        target = await store.target_of(self.db, event.service_id)
        if target is None or target.health != ServiceHealth.HEALTHY:
            self._targets.pop(event.service_id, None)
        else:
            self._targets[event.service_id] = (now + TARGET_SECONDS, target)
        return target

    def _time_left(self, lease_ends: float) -> float:
        """Seconds a send may still take: its own deadline, and never past the lease's end
        less the margin."""
        return min(
            self.config.send_timeout.total_seconds(),
            lease_ends - self.config.lease_margin.total_seconds() - time.monotonic(),
        )

    async def _send(
        self, events_url: str, event: Claimed, body: dict[str, Any], lease_ends: float
    ) -> EventAnswer:
        """One deadline for the whole send. The HTTP client's timeouts bound each phase alone,
        so an answer trickling in a byte every few seconds would satisfy them for ever."""
        deadline = max(self._time_left(lease_ends), 0.0)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(deadline):
                return await send_event(
                    self.http, events_url, api=event.api, kind=event.kind, body=body
                )
        except TimeoutError:
            return EventAnswer(
                "try_again",
                status=None,
                latency_ms=int((time.perf_counter() - started) * 1000),
                message=f"PagerDuty did not answer in full within {deadline:.3g} s",
                timed_out=True,
            )

    async def _wire_slot(self, host: str, lease_ends: float, rank: int) -> bool:
        """One of the host's slots and one of the worker's (`max_in_flight_per_host`,
        `concurrency`), waiting no later than the lease allows; False when that wait ran out.
        A host that hangs holds its own slots, never more of the worker's (isolation). Slots
        go to the lowest `rank` first (slots.py): a key's first event in hand before any
        key's second, so a quiet key's page does not queue behind a storm on others."""
        if host not in self._host_sends:
            self._host_sends[host] = PrioritySlots(self.config.max_in_flight_per_host)
        host_slots = self._host_sends[host]
        try:
            async with asyncio.timeout(max(self._time_left(lease_ends), 0.0)):
                await host_slots.acquire(rank)
                try:
                    await self._sends.acquire(rank)
                except BaseException:
                    host_slots.release()
                    raise
        except TimeoutError:
            return False
        return True

    # Each batch in a task of its own (app/db/pool.py in_own_task): a connection the database
    # dropped under one batch leaves the next one untouched.

    async def _spend_apart(self, events: list[Claimed]) -> list[store.Spend | Exception]:
        return [*await in_own_task(self._spend_batch(events))]

    async def _record_apart(
        self, sent: list[tuple[Claimed, store.Delivery]]
    ) -> list[bool | Exception]:
        return [*await in_own_task(self._record_deliveries(sent))]

    async def _spend_batch(self, events: Sequence[Claimed]) -> list[store.Spend]:
        return await store.spend_many(
            self.db,
            events,
            window=self.config.budget_window,
            max_in_flight=self.config.max_in_flight_per_key,
            lease=self.config.lease,
        )

    async def _record_deliveries(
        self, deliveries: Sequence[tuple[Claimed, store.Delivery]]
    ) -> list[bool]:
        """The common case, many at once in one statement: each event's fenced outcome, its
        attempt and its key."""
        return await outcomes.mark_delivered_many(
            self.db,
            [event for event, _ in deliveries],
            store.delivered_beside(
                [delivery for _, delivery in deliveries],
                stale_error=f"{STALE_NOTE}PagerDuty accepted it",
            ),
        )

    async def _record(self, event: Claimed, attempt: store.Attempt, answer: EventAnswer) -> None:
        outcome = observe.attempt_finished(answer)
        error = None if answer.outcome == "accepted" else describe(answer)
        if answer.outcome == "accepted":
            # The common case, with the other sends' deliveries in one statement: the fenced
            # outcome, the attempt and the key.
            current = await self._deliveries.submit(
                (
                    event,
                    store.Delivery(
                        event.id,
                        attempt,
                        event.routing_key_hash,
                        outcome=outcome,
                        http_status=answer.status,
                        latency_ms=answer.latency_ms,
                        response=answer.response,
                        # A retry got through: the key's other retries go now, not at their
                        # backoff's end. A first attempt proves nothing of them (one event
                        # that PagerDuty keeps failing must not ride on every other event's
                        # success).
                        retry_others=event.attempts > 0,
                    ),
                )
            )
            observe.paged(event.created_at)
            if not current:
                log.warning("an answer came after its lease had passed on; the event is left as is")
            return
        async with self.db.transaction():
            # The fence: from here to the commit the event is this sender's, or it is left
            # alone. A late sender records what it got on its attempt, and nothing else.
            current = await claims.fence(self.db, event)
            await store.finish_attempt(
                self.db,
                attempt,
                event.routing_key_hash,
                outcome=outcome,
                http_status=answer.status,
                latency_ms=answer.latency_ms,
                response=answer.response,
                error=error if current else f"{STALE_NOTE}{error or 'PagerDuty accepted it'}",
            )
            if not current:
                log.warning("an answer came after its lease had passed on; the event is left as is")
                return
            await self._settler.settle(event, answer, error)
