"""The callbacks' types: the `type` of every body, as receivers switch on it."""

from __future__ import annotations

# An alert's incident in PagerDuty (from its v3 webhooks). `incident.unacknowledged` is
# PagerDuty's own: an acknowledgement timed out and the incident is triggered again.
INCIDENT_TYPES = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.escalated",
    "incident.reassigned",
    "incident.resolved",
    "incident.reopened",
    "incident.annotated",
)
# An event to PagerDuty failed for good, or is held (its service is unhealthy or gone).
DELIVERY_TYPES = ("delivery.failed", "delivery.held")
CONNECTION_TYPES = (
    "connection.needs_reconnect",
    "connection.broken",
    "connection.restored",
    "connection.disconnected",
)
# An alert took longer to acknowledge or resolve than its tenant's target for its severity.
SLA_BREACHED = "alert.sla_breached"
TEST = "callback.test"
ALL_TYPES = (*INCIDENT_TYPES, *DELIVERY_TYPES, *CONNECTION_TYPES, SLA_BREACHED, TEST)
