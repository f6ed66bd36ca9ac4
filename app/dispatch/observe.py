"""What the dispatcher tells /metrics: each attempt's outcome, reason and duration, and each
page's time from acceptance to PagerDuty."""

from __future__ import annotations

from datetime import UTC, datetime

from app.observability.metrics import (
    ATTEMPT_SECONDS,
    BUDGET_WAITS,
    CLAIMS,
    DELIVERIES,
    TIME_TO_PAGE,
)
from app.pagerduty.events import EventAnswer

# Our outcome of an attempt, as recorded in delivery_attempts.
ATTEMPT_OUTCOMES = {
    "accepted": "delivered",
    "rejected": "rejected",
    "key_rejected": "key_rejected",
    "rate_limited": "rate_limited",
    "try_again": "retry",
}


def _reason(answer: EventAnswer) -> str:
    if answer.outcome == "accepted":
        return "accepted"
    if answer.outcome == "rejected":
        return "invalid_event"
    if answer.outcome == "key_rejected":
        return "routing_key_refused"
    if answer.outcome == "rate_limited":
        return "rate_limited"
    if answer.status is None:
        return "timeout" if answer.timed_out else "connection_error"
    return "server_error" if answer.status >= 500 else "unexpected_status"


def attempt_finished(answer: EventAnswer) -> str:
    """Count the attempt; returns its outcome as the delivery log records it."""
    outcome = ATTEMPT_OUTCOMES[answer.outcome]
    DELIVERIES.labels(outcome, _reason(answer)).inc()
    ATTEMPT_SECONDS.labels(outcome).observe(answer.latency_ms / 1000)
    return outcome


def paged(accepted_at: datetime) -> None:
    TIME_TO_PAGE.observe(max((datetime.now(UTC) - accepted_at).total_seconds(), 0.0))


def not_sent(outcome: str, reason: str) -> None:
    """An event settled without an attempt (held, cancelled) or after its last one."""
    DELIVERIES.labels(outcome, reason).inc()


def budget_spent() -> None:
    BUDGET_WAITS.inc()


def claimed(events: int) -> None:
    CLAIMS.labels("events" if events else "none").inc()
