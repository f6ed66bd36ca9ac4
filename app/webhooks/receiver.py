"""`POST /pagerduty/webhooks/{subscription}`: PagerDuty's v3 webhooks.

The signature is checked on the raw body before anything is parsed. PagerDuty wants a 2xx
within 5 seconds and delivers at least once: the work here is a few rows, and a repeated
`X-Webhook-Id` is answered 200 without being recorded again. An unknown subscription is a
404 (PagerDuty drops 4xx, and disables a subscription after three)."""

from __future__ import annotations

import logging

from databases import Database
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.errors import InputError, NotFoundError
from app.observability.metrics import WEBHOOK_VERIFICATIONS
from app.web.api import get_deps, path_uuid
from app.webhooks import store
from app.webhooks.payload import WebhookEvent, parse_event
from app.webhooks.signature import SIGNATURE_HEADER, MalformedSignature, verify
from app.webhooks.subscribe import WEBHOOK_EVENTS

log = logging.getLogger("pdconnect.webhooks")

BODY_MAX_BYTES = 1024 * 1024
WEBHOOK_ID_MAX_LENGTH = 200
# Every incident event we subscribe to records a state; service.deleted is handled apart.
INCIDENT_EVENTS = frozenset(e for e in WEBHOOK_EVENTS if e.startswith("incident."))


async def _raw_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > BODY_MAX_BYTES:
            raise InputError("", "body too large", status=413)
    return bytes(body)


def _refused(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message}}, status_code=status)


async def receive(request: Request) -> Response:
    deps = get_deps(request)
    subscription = await store.get_subscription(
        deps.db, path_uuid(request, "subscription", "webhook subscription")
    )
    if subscription is None:
        raise NotFoundError("webhook subscription")
    raw = await _raw_body(request)
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None:
        WEBHOOK_VERIFICATIONS.labels("missing").inc()
        return _refused(401, "X-PagerDuty-Signature is missing")
    try:
        valid = verify(deps.vault.decrypt(subscription.secret_enc), raw, header)
    except MalformedSignature:
        WEBHOOK_VERIFICATIONS.labels("malformed").inc()
        return _refused(400, "X-PagerDuty-Signature is malformed")
    WEBHOOK_VERIFICATIONS.labels("valid" if valid else "mismatch").inc()
    if not valid:
        return _refused(401, "X-PagerDuty-Signature does not match")
    event = parse_event(raw)
    webhook_id = request.headers.get("x-webhook-id", "")
    if not webhook_id or len(webhook_id) > WEBHOOK_ID_MAX_LENGTH:
        raise InputError("X-Webhook-Id", "is missing", status=400)
    async with deps.db.transaction():
        fresh = await store.first_delivery(
            deps.db,
            webhook_id=webhook_id,
            subscription_id=subscription.id,
            event_type=event.event_type,
        )
        if fresh:
            await _record(deps.db, subscription, event)
    return JSONResponse({"status": "ok" if fresh else "duplicate"})


async def _record(db: Database, subscription: store.Subscription, event: WebhookEvent) -> None:
    if event.event_type == "service.deleted":
        service_id = await store.service_of(db, subscription.installation_id, event.resource_id)
        if service_id is not None:
            await store.mark_service_gone(db, service_id, "the service was deleted in PagerDuty")
        return
    if event.event_type not in INCIDENT_EVENTS or event.status is None:
        return
    if event.service_id is None or event.incident_key is None:
        return
    service_id = await store.service_of(db, subscription.installation_id, event.service_id)
    if service_id is None:
        # An incident of a service this tenant did not connect: nothing of ours to update.
        return
    await store.record_incident(
        db,
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
    )


routes = [Route("/pagerduty/webhooks/{subscription}", receive, methods=["POST"])]
