"""The outbox's words: an event's status, a service's health, the channel workers listen on.

The values are the strings stored in `events.status` and `pd_services.health` (the columns'
CHECK constraints list the same) and shown by the API, so a `StrEnum` compares and serializes
as the bare string it replaces.
"""

from __future__ import annotations

from enum import StrEnum


class EventStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    HELD = "held"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    # Accepted and deliberately not sent: a maintenance window, a "don't page" rule, or the
    # tenant's choice for alerts no rule matches (the event's reason names which).
    SUPPRESSED = "suppressed"


class ServiceHealth(StrEnum):
    HEALTHY = "healthy"
    # PagerDuty keeps refusing the service's routing key.
    UNHEALTHY = "unhealthy"
    # PagerDuty says the service, or the integration pdconnect created on it, was deleted.
    GONE = "gone"


# Not yet finished: an event leaves these only for a final status, never back into them.
PENDING: tuple[EventStatus, ...] = (EventStatus.QUEUED, EventStatus.SENDING, EventStatus.HELD)
FINAL: tuple[EventStatus, ...] = (
    EventStatus.DELIVERED,
    EventStatus.FAILED,
    EventStatus.CANCELLED,
    EventStatus.SKIPPED,
    EventStatus.SUPPRESSED,
)
# On the way to PagerDuty, as a person reading the log sees it.
ON_ITS_WAY: tuple[EventStatus, ...] = (EventStatus.QUEUED, EventStatus.SENDING)

# NOTIFYed when events become due at once; every dispatcher LISTENs on it.
NOTIFY_CHANNEL = "pdconnect_events"
