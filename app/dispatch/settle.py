"""After PagerDuty answered a current attempt: the event's next state, and its key's.

Our retry policy decides (policy.py); the outbox writes the event's status (app/outbox), this
package's store the key's counters and pauses. Everything here runs inside the sender's fenced
transaction (worker.py `_record`), so the event's outcome and its key's share one commit.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from databases import Database

from app.callbacks.emit import delivery_settled
from app.dispatch import observe, store
from app.dispatch.policy import DispatchConfig, rate_limited_pause, retry_delay
from app.outbox import outcomes, services
from app.outbox.claims import Claimed
from app.outbox.states import EventStatus, ServiceHealth
from app.pagerduty.events import EventAnswer

log = logging.getLogger("pdconnect.dispatch")


@dataclass
class Settler:
    db: Database
    config: DispatchConfig
    rng: random.Random

    async def settle(self, event: Claimed, answer: EventAnswer, error: str | None) -> None:
        assert error is not None or answer.outcome == "accepted"
        if answer.outcome == "accepted":
            if await outcomes.mark_delivered(self.db, event):
                await store.key_delivered(self.db, event.routing_key_hash)
            observe.paged(event.created_at)
            if event.attempts > 0:
                # A retry got through: the key's other retries go now, not at their
                # backoff's end. A first attempt proves nothing of them (one event that
                # PagerDuty keeps failing must not ride on every other event's success).
                await store.retry_key_now(self.db, event.routing_key_hash)
        elif answer.outcome == "rejected":
            await outcomes.mark_final(
                self.db,
                event,
                status=EventStatus.FAILED,
                error=error or "",
                pd_errors=answer.errors,
            )
            await delivery_settled(self.db, "delivery.failed", event, error or "")
        elif answer.outcome == "key_rejected":
            # One such answer may be PagerDuty's hiccup: retried like a transient error,
            # until the key has been refused enough times in a row to be believed.
            rejections = await store.count_key_rejection(self.db, event.routing_key_hash)
            if rejections >= self.config.key_rejections_to_unhealthy:
                await outcomes.hold(self.db, event, error=error or "")
                await delivery_settled(self.db, "delivery.held", event, error or "")
                # Its services are shown unhealthy and what is queued for the key is held
                # (kept, visible) until the admin reconnects, re-keys or removes them.
                await services.hold_services(
                    self.db,
                    health=ServiceHealth.UNHEALTHY,
                    reason=f"PagerDuty rejects its routing key: {error or ''}",
                    routing_key_hash=event.routing_key_hash,
                )
                log.warning("a routing key was rejected repeatedly; its services are unhealthy")
            else:
                await self._retry_or_give_up(event, error or "")
        elif answer.outcome == "rate_limited":
            await self._pause(event, answer.retry_after, f"waiting: PagerDuty said {error}")
            # Not the event's fault: it goes back with no delay of its own.
            await outcomes.schedule_retry(self.db, event, delay=timedelta(0), error=error or "")
        else:
            if answer.timed_out:
                timeouts = await store.count_timeout(self.db, event.routing_key_hash)
                if timeouts >= self.config.timeouts_to_pause:
                    # A key that hangs rests like a 429'd one, instead of holding its share of
                    # sends for a whole timeout again and again.
                    await self._pause(
                        event,
                        None,
                        f"waiting: PagerDuty did not answer {timeouts} sends to its routing "
                        "key in time; the key rests before it is tried again",
                    )
            await self._retry_or_give_up(event, error or "")

    async def _pause(self, event: Claimed, retry_after: float | None, reason: str) -> None:
        await store.pause_key(
            self.db,
            event.routing_key_hash,
            lambda level: rate_limited_pause(self.config, level, retry_after, self.rng),
            reason=reason,
        )

    async def _retry_or_give_up(self, event: Claimed, error: str) -> None:
        age = datetime.now(UTC) - event.created_at
        if age > self.config.give_up_after:
            hours = self.config.give_up_after.total_seconds() / 3600
            await outcomes.mark_final(
                self.db,
                event,
                status=EventStatus.FAILED,
                error=f"gave up after {hours:g} hours of retries; last: {error}",
            )
            observe.not_sent(EventStatus.FAILED, "gave_up")
            await delivery_settled(self.db, "delivery.failed", event, error)
            return
        delay = retry_delay(self.config, event.attempts + 1, self.rng)
        await outcomes.schedule_retry(self.db, event, delay=delay, error=error)


def describe(answer: EventAnswer) -> str:
    status = f"HTTP {answer.status}" if answer.status is not None else "no answer"
    detail = "; ".join(answer.errors) or answer.message
    return f"{status}: {detail}" if detail else status
