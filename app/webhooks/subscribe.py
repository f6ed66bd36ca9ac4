"""Creating the v3 webhook subscription of a connected service, so PagerDuty tells us when its
incidents are acknowledged or resolved, by whom, and when the service is deleted."""

from __future__ import annotations

import logging
import uuid
from uuid import UUID

from app.deps import Deps
from app.pagerduty.errors import PagerDutyError
from app.pagerduty.models import WebhookSubscription
from app.pagerduty.rest import RestClient
from app.webhooks import store

log = logging.getLogger("pdconnect.webhooks")

WEBHOOK_EVENTS = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.resolved",
    "incident.reopened",
    "incident.escalated",
    "incident.reassigned",
    # Notes added in PagerDuty (app/webhooks/routes.py keeps them on their alert).
    "incident.annotated",
    "service.deleted",
)


def receiver_url(deps: Deps, subscription_id: UUID) -> str:
    return f"{deps.config.base_url}/pagerduty/webhooks/{subscription_id}"


async def subscribe_service(
    deps: Deps, client: RestClient, *, tenant_id: UUID, installation_id: UUID, pd_service_id: str
) -> bool:
    """Subscribe once per service; False when PagerDuty refused (the service still pages, only
    incident states will not show). The secret is shown only in this answer: it is encrypted
    and stored before anything else happens."""
    if await store.has_subscription(deps.db, installation_id, pd_service_id):
        return True
    subscription_id = uuid.uuid4()
    try:
        created = await create_in_pagerduty(deps, client, subscription_id, pd_service_id)
    except PagerDutyError as exc:
        log.warning("webhook subscription for a service was refused: %s", exc)
        return False
    await store.insert_subscription(
        deps.db,
        subscription_id=subscription_id,
        tenant_id=tenant_id,
        installation_id=installation_id,
        pd_service_id=pd_service_id,
        pd_subscription_id=created.id,
        secret_enc=deps.vault.encrypt(created.secret),
    )
    return True


async def create_in_pagerduty(
    deps: Deps, client: RestClient, subscription_id: UUID, pd_service_id: str
) -> WebhookSubscription:
    """A subscription of the service's incidents to our receiver for `subscription_id`; the
    caller stores its secret at once."""
    return await client.create_webhook_subscription(
        url=receiver_url(deps, subscription_id),
        events=WEBHOOK_EVENTS,
        filter_type="service_reference",
        filter_id=pd_service_id,
    )
