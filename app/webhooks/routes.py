"""`POST /pagerduty/webhooks/{subscription}`: PagerDuty's v3 webhooks.

PagerDuty wants a 2xx within 5 seconds, retries timeouts, 5xx and 429, drops any other 4xx,
and disables a subscription for 24 hours after three drops in a row. So only what PagerDuty
itself would never send is refused: an unknown subscription (404), a body over the limit (413)
and a missing or unverifiable signature (401), each answered in JSON. The signature is checked
on the raw body before anything is parsed.

Once it holds, every delivery is answered 200 and recorded once per `X-Webhook-Id` (it
delivers at least once): an incident's new state is kept (as reconciliation keeps one it
reads through the REST API: app/alerts/incidents.py), a note (`incident.annotated`) is kept on
its alert, a `service.deleted` marks the service gone, and anything else is recorded and
ignored: the `pagey.ping` test event, event types that appear later, other resource types,
odd or missing fields, even a body that is not JSON (a signed one can only come from
PagerDuty; refusing it would count toward disabling the subscription and cost the tenant a
day of incident states over a delivery we cannot use)."""

from __future__ import annotations

import hashlib
import logging
from uuid import UUID

from databases import Database
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.alerts import incidents, notes
from app.alerts.incidents import IncidentChange
from app.callbacks.emit import from_pagerduty_webhook
from app.errors import NotFoundError
from app.observability.metrics import WEBHOOK_VERIFICATIONS
from app.outbox import services
from app.outbox.states import ServiceHealth
from app.web.api import get_deps, path_uuid
from app.web.body import read_body
from app.web.routing import api
from app.webhooks import store
from app.webhooks.payload import WebhookEvent, parse_event
from app.webhooks.signature import SIGNATURE_HEADER, MalformedSignature, verify
from app.webhooks.subscribe import WEBHOOK_EVENTS

log = logging.getLogger("pdconnect.webhooks")

# PagerDuty's v3 webhook deliveries are a few kilobytes: one incident event each.
BODY_MAX_BYTES = 256 * 1024
WEBHOOK_ID_MAX_LENGTH = 200
PING_EVENT = "pagey.ping"
NOTE_EVENT = "incident.annotated"
# Every incident event we subscribe to records a state but a note's; service.deleted is
# handled apart.
INCIDENT_EVENTS = frozenset(
    e for e in WEBHOOK_EVENTS if e.startswith("incident.") and e != NOTE_EVENT
)


def _refused(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message}}, status_code=status)


def _delivery_id(request: Request, subscription_id: UUID, raw: bytes) -> str:
    """The `X-Webhook-Id`, the same on every attempt of a delivery. PagerDuty always sends one
    (a UUID); should it be lost on the way (a proxy) or be absurdly long, a digest of it, the
    subscription and the body stands in: a retry repeats all three, so it is still recorded
    once, and one event sent to two subscriptions stays two deliveries."""
    given = request.headers.get("x-webhook-id", "")
    if given and len(given) <= WEBHOOK_ID_MAX_LENGTH:
        return given
    digest = hashlib.sha256(f"{subscription_id}\n{given}\n".encode() + raw).hexdigest()
    return f"sha256:{digest}"


async def receive(request: Request) -> Response:
    deps = get_deps(request)
    subscription = await store.get_subscription(
        deps.db, path_uuid(request, "subscription", "webhook subscription")
    )
    if subscription is None:
        raise NotFoundError("webhook subscription")
    raw = await read_body(request)
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None:
        WEBHOOK_VERIFICATIONS.labels("missing").inc()
        return _refused(401, "X-PagerDuty-Signature is missing")
    try:
        valid = verify(deps.vault.decrypt(subscription.secret_enc), raw, header)
    except MalformedSignature as exc:
        # Nothing in the header can vouch for the body: unauthenticated, like a mismatch
        # (PagerDuty drops any 4xx alike); the metric keeps the two apart for operators.
        WEBHOOK_VERIFICATIONS.labels("malformed").inc()
        return _refused(401, f"X-PagerDuty-Signature {exc}")
    WEBHOOK_VERIFICATIONS.labels("valid" if valid else "mismatch").inc()
    if not valid:
        return _refused(401, "X-PagerDuty-Signature does not match")
    event = parse_event(raw)
    async with deps.db.transaction():
        fresh = await store.first_delivery(
            deps.db,
            webhook_id=_delivery_id(request, subscription.id, raw),
            subscription_id=subscription.id,
            event_type=event.event_type,
        )
        ignored = await _record(deps.db, subscription, event) if fresh else None
        await from_pagerduty_webhook(deps.db, subscription, raw)
    if not fresh:
        return JSONResponse({"status": "duplicate"})
    if ignored is not None:
        # %r: the event type is PagerDuty's text, and a text log must stay one line per entry.
        log.info("webhook delivery recorded and ignored: %s (%r)", ignored, event.event_type)
        return JSONResponse({"status": "ignored"})
    return JSONResponse({"status": "ok"})


def _is(data_type: str | None, expected: str) -> bool:
    # `data.type` names the resource in every documented event; one that is absent does not
    # make an otherwise complete event unreadable, one that differs does.
    return data_type is None or data_type == expected


async def _record(
    db: Database, subscription: store.Subscription, event: WebhookEvent
) -> str | None:
    """Apply what the delivery says; or say why it is ignored (it is recorded all the same)."""
    if event.event_type == PING_EVENT:
        return "a test event"
    if event.event_type == "service.deleted":
        if not _is(event.data_type, "service") or event.resource_id is None:
            return "a service.deleted event without a service"
        service_id = await store.service_of(db, subscription.installation_id, event.resource_id)
        if service_id is not None:
            await services.hold_services(
                db,
                health=ServiceHealth.GONE,
                reason="the service was deleted in PagerDuty",
                service_id=service_id,
                note_on_events=True,
            )
        return None
    if event.event_type == NOTE_EVENT:
        return await _record_note(db, subscription, event)
    if event.event_type not in INCIDENT_EVENTS:
        return "an event type pdconnect does not act on"
    if not _is(event.data_type, "incident"):
        return "an incident event whose data is not an incident"
    if (
        event.resource_id is None
        or event.status is None
        or event.occurred_at is None
        or event.service_id is None
        or event.incident_key is None
    ):
        return "an incident event without the fields its state needs"
    service_id = await store.service_of(db, subscription.installation_id, event.service_id)
    if service_id is None:
        # An incident of a service this tenant did not connect: nothing of ours to update.
        return None
    await incidents.apply(
        db,
        IncidentChange(
            tenant_id=subscription.tenant_id,
            service_id=service_id,
            dedup_key=event.incident_key,
            incident_id=event.resource_id,
            incident_number=event.incident_number,
            status=event.status,
            title=event.title,
            html_url=event.html_url,
            changed_by=event.agent,
            changed_at=event.occurred_at,
        ),
    )
    return None


async def _record_note(
    db: Database, subscription: store.Subscription, event: WebhookEvent
) -> str | None:
    """A note added to an incident (in PagerDuty, or through our API and echoed back): kept on
    the alert the incident belongs to."""
    if (
        event.resource_id is None
        or event.note_incident_id is None
        or event.note_content is None
        or event.occurred_at is None
    ):
        return "a note event without the fields a note needs"
    found = await incidents.incident_of(db, subscription.installation_id, event.note_incident_id)
    if found is None:
        return "a note on an incident pdconnect has not seen"
    tenant_id, service_id, dedup_key = found
    alert_id = await notes.latest_alert(db, tenant_id, dedup_key)
    if alert_id is None:
        return "a note on an incident of no alert of pdconnect's"
    await notes.add_note(
        db,
        tenant_id=tenant_id,
        alert_id=alert_id,
        service_id=service_id,
        incident_id=event.note_incident_id,
        pd_note_id=event.resource_id,
        content=event.note_content,
        author=event.agent,
        origin="pagerduty",
        created_at=event.occurred_at,
    )
    return None


routes = [
    api("/pagerduty/webhooks/{subscription}", receive, methods=["POST"], max_body=BODY_MAX_BYTES)
]
