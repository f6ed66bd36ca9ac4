"""What the delivery history says of an event, in words for people: its status ("Waiting for
the rate budget", "Held: PagerDuty does not know this routing key"), why it waits and for how
long, its severity and the mapping applied, and what PagerDuty made of it.

Pure functions of what app/dispatch/log_store.py reads: the pages decide nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.dispatch.log_store import Attempt, Delivery, Event, KeyBudget
from app.dispatch.policy import DispatchConfig
from app.ingest.severity import normalize
from app.outbox.states import EventStatus

# The dispatcher's window for a key's budget (app/dispatch/policy.py).
BUDGET_WINDOW = DispatchConfig().budget_window
# How the dispatcher words a key resting on its spent budget (app/dispatch/store.py).
BUDGET_PAUSE = "spent its budget"
# How the dispatcher words a refused routing key (app/dispatch/settle.py).
KEY_REJECTED = "rejects its routing key"
KIND_WORDS = {
    "trigger": "Trigger",
    "acknowledge": "Acknowledge",
    "resolve": "Resolve",
    "change": "Change",
}
OUTCOME_WORDS = {
    "delivered": "Accepted",
    "rejected": "Refused (the event is invalid)",
    "key_rejected": "Refused (routing key)",
    "rate_limited": "Rate limited",
    "retry": "Failed, retried",
    "abandoned": "No answer before the lease ran out",
}


@dataclass(frozen=True)
class Words:
    """A status as the page shows it: a few words, and the detail beside them."""

    headline: str
    detail: str | None = None
    # For styling: ok, waiting, problem or quiet.
    tone: str = "quiet"


def about(delta: timedelta) -> str:
    """A wait, roughly: "about 20 s", "about 4 min", "about 2 h"."""
    seconds = max(0, round(delta.total_seconds()))
    if seconds < 1:
        return "a moment"
    if seconds < 90:
        return f"about {seconds} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {round(seconds / 3600)} h"


_WINDOW_ID = re.compile(r" \([0-9a-f-]{36}\)$")


def _without(prefix: str, text: str) -> str:
    return text[len(prefix) :] if text.lower().startswith(prefix) else text


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def held_reason(delivery: Delivery) -> str:
    """Why a held event is kept, from its service's health first (the reason it is held)."""
    reason = delivery.service_health_reason or ""
    if KEY_REJECTED in reason or KEY_REJECTED in (delivery.event.last_error or ""):
        return "PagerDuty does not know this routing key"
    if reason:
        return reason
    if delivery.event.last_error:
        return _without("held: ", delivery.event.last_error)
    return "its service is not healthy"


def _answered(http_status: int | None, error: str | None) -> str:
    if http_status is not None:
        return f"PagerDuty answered {http_status}"
    return error or "no answer"


def status_words(delivery: Delivery, now: datetime) -> Words:
    """The history's status column."""
    event = delivery.event
    status = event.status
    if status == EventStatus.DELIVERED:
        return Words("Delivered", tone="ok")
    if status == EventStatus.SENDING:
        return Words("Sending", tone="waiting")
    if status == EventStatus.QUEUED:
        return _queued_words(delivery, now)
    if status == EventStatus.HELD:
        return Words(f"Held: {held_reason(delivery)}", tone="problem")
    if status == EventStatus.FAILED:
        detail = "; ".join(event.pd_errors) or event.last_error
        return Words("Failed: PagerDuty refused it", detail, tone="problem")
    if status == EventStatus.CANCELLED:
        reason = _without("cancelled: ", event.last_error or "")
        return Words(f"Cancelled: {reason}" if reason else "Cancelled", tone="problem")
    if status == EventStatus.SUPPRESSED:
        # The reason names the rule or maintenance window (app/ingest/intake.py); the window's
        # id after its name is for the API, not for people.
        reason = _WINDOW_ID.sub("", _without("not paged: ", event.last_error or ""))
        return Words(f"Suppressed: {reason}" if reason else "Suppressed", tone="quiet")
    return Words("Not sent: nothing to resolve", tone="quiet")


def _queued_words(delivery: Delivery, now: datetime) -> Words:
    event = delivery.event
    paused = delivery.key_paused_until
    if paused is not None and paused > now and delivery.key_pause_reason:
        wait = about(paused - now)
        if BUDGET_PAUSE in delivery.key_pause_reason:
            # When the key sends next, not when this event goes: that depends on how many of
            # the key's events are ahead of it, which its own page counts.
            return Words(
                "Waiting for the rate budget",
                f"the next of its key's events goes in {wait}",
                tone="waiting",
            )
        reason = _without("waiting: ", delivery.key_pause_reason)
        return Words("Waiting: the routing key rests", f"{reason}; {wait}", tone="waiting")
    if event.next_attempt_at > now:
        wait = about(event.next_attempt_at - now)
        if event.attempts > 0:
            answered = _answered(delivery.last_http_status, delivery.last_attempt_error)
            return Words("Retrying", f"next attempt in {wait} after {answered}", tone="waiting")
        return Words("Scheduled", f"goes in {wait}", tone="waiting")
    return Words("Queued", tone="waiting")


def budget_wait(budget: KeyBudget, window: timedelta = BUDGET_WINDOW) -> timedelta | None:
    """How long until the key's budget has room for this event, or None when it has room now.

    The key may send `limit` events in any `window`. The events ahead of this one take the
    room left first; after that each waits for a send to leave the window: the k-th to wait
    takes the slot freed k-th (the oldest send's first), a window later for each full round."""
    now = budget.now
    in_window = sorted(s for s in budget.sends if s > now - window)
    free = budget.limit - len(in_window)
    wait: timedelta | None = None
    if budget.ahead >= free:
        slots = in_window + [now] * max(free, 0)
        waiting = budget.ahead - max(free, 0)
        rounds, index = divmod(waiting, budget.limit)
        freed = slots[index] if index < len(slots) else now
        wait = freed + window * (rounds + 1) - now
    if budget.paused_until is not None and budget.paused_until > now:
        rest = budget.paused_until - now
        wait = rest if wait is None else max(wait, rest)
    return wait


def wait_reason(
    delivery: Delivery, budget: KeyBudget | None, attempts: Sequence[Attempt], now: datetime
) -> str | None:
    """Why a queued event has not gone yet, and roughly until when (the event's page)."""
    event = delivery.event
    if event.status == EventStatus.SENDING:
        return "Being sent to PagerDuty now."
    if event.status != EventStatus.QUEUED:
        return None
    if budget is not None and budget.blocked_by is not None:
        return (
            f"Waiting for the earlier {budget.blocked_by} of this alert to this service: "
            "PagerDuty gets an alert's events in the order they were accepted."
        )
    if event.next_attempt_at > now:
        wait = about(event.next_attempt_at - now)
        if event.attempts == 0:
            return (
                f"Held back on purpose: it goes at {event.next_attempt_at:%H:%M:%S} UTC ({wait})."
            )
        last = attempts[-1] if attempts else None
        answered = _answered(
            last.http_status if last else delivery.last_http_status,
            last.error if last else delivery.last_attempt_error,
        )
        return f"Next attempt in {wait} after {answered}."
    if budget is None:
        return None
    reason = budget.pause_reason or ""
    resting = budget.paused_until is not None and budget.paused_until > budget.now
    if resting and reason and BUDGET_PAUSE not in reason:
        # PagerDuty said 429, or stopped answering: the key rests.
        assert budget.paused_until is not None
        rest = about(budget.paused_until - budget.now)
        return f"{_sentence(_without('waiting: ', reason))}; next try in {rest}."
    wait_for = budget_wait(budget)
    if wait_for is not None:
        ahead = f"; {budget.ahead} of its events are ahead of this one" if budget.ahead else ""
        return (
            f"Waiting for the rate budget, {about(wait_for)}: its routing key may send "
            f"{budget.limit} events a minute{ahead}."
        )
    return "Due now: a dispatcher takes it in a moment."


# app/ingest/mapping.py's note of a severity the table changed.
SEVERITY_NOTE = re.compile(r"severity \u201c(.*)\u201d sent as \w+")


def severity_mapping(delivery: Delivery) -> tuple[str | None, str | None]:
    """The PagerDuty severity sent, and the sender's own word for it when it differs: the
    mapping notes it on the event ("severity “P1” sent as critical"); events written before
    that was noted show it only for an Alertmanager alert, whose labels are in its details."""
    mapped = delivery.severity
    raw = _sender_severity(delivery.event) if mapped else None
    if raw is None or normalize(raw) == normalize(mapped or ""):
        return mapped, None
    return mapped, raw


def _sender_severity(event: Event) -> str | None:
    for note in event.notes:
        noted = SEVERITY_NOTE.fullmatch(note)
        if noted is not None:
            return noted.group(1)
    if event.source != "alertmanager":
        return None
    payload = event.body.get("payload")
    details = payload.get("custom_details") if isinstance(payload, Mapping) else None
    labels = details.get("labels") if isinstance(details, Mapping) else None
    raw = labels.get("severity") if isinstance(labels, Mapping) else None
    return raw if isinstance(raw, str) and raw.strip() else None


def incident_words(event: Event) -> str | None:
    """What PagerDuty's webhooks said became of the alert: "acknowledged by Ada Lovelace"."""
    if event.incident_status is None:
        return None
    state = "open" if event.incident_status == "triggered" else event.incident_status
    return f"{state} by {event.incident_changed_by}" if event.incident_changed_by else state


def sent_body(event: Event) -> Mapping[str, Any]:
    """The body as it goes to PagerDuty, but for the routing key the dispatcher adds at send
    time (it is never stored with the event)."""
    return {k: v for k, v in event.body.items() if k not in ("routing_key", "service_key")}
