"""Keeping webhook subscriptions on: a subscription that is off delivers nothing, and PagerDuty
tells no one. So the upkeep reads each one from PagerDuty now and then and puts it back:

- disabled by PagerDuty after failed deliveries (`delivery_method.temporarily_disabled`):
  `POST /webhook_subscriptions/{id}/enable`, the documented way back (a PUT does not end it);
- switched off (`active` false) by someone in the account: `PUT` with `active` true. pdconnect
  made it for the tenant's alerts and the tenant still has them connected; disconnecting is how
  to stop it, and the audit log says it was switched back on;
- gone (404): made again for the same receiver URL, with its new secret stored;
- missing event types pdconnect now needs (`incident.annotated`, added after earlier
  subscriptions were made): added, keeping any the owner added.

What was done is logged and written to the tenant's audit log. Incident states missed while
it was off are caught by reconciliation (app/incidents/reconcile.py)."""

from __future__ import annotations

import logging
from datetime import timedelta
from uuid import UUID

from app.deps import Deps
from app.pagerduty.errors import NotFound, PagerDutyError, RetryLater, Unauthorized
from app.pagerduty.incidents import IncidentsClient
from app.tenants.store import insert_audit
from app.webhooks import store
from app.webhooks.subscribe import WEBHOOK_EVENTS, create_in_pagerduty

log = logging.getLogger("pdconnect.webhooks")

ACTOR = "pdconnect"


async def watch_subscriptions(
    deps: Deps, installation_id: UUID, client: IncidentsClient, *, every: timedelta
) -> list[str]:
    """Check the installation's subscriptions not checked for `every`; returns the audit
    actions taken. RetryLater and Unauthorized propagate (the account's trouble, not one
    subscription's), leaving the unchecked ones due."""
    done: list[str] = []
    due = await store.claim_for_check(deps.db, installation_id, every=every)
    for index, subscription in enumerate(due):
        try:
            action = await _check(deps, client, subscription)
        except (RetryLater, Unauthorized):
            await _unstamp(deps, [s.id for s in due[index:]])
            raise
        except PagerDutyError as exc:
            log.warning("a webhook subscription could not be checked: %s", exc)
            continue
        if action is not None:
            done.append(action)
    return done


async def _check(deps: Deps, client: IncidentsClient, sub: store.Subscription) -> str | None:
    try:
        state = await client.get_webhook_subscription(sub.pd_subscription_id)
    except NotFound:
        created = await create_in_pagerduty(deps, client, sub.id, sub.pd_service_id)
        await store.replace_in_pagerduty(
            deps.db,
            sub.id,
            pd_subscription_id=created.id,
            secret_enc=deps.vault.encrypt(created.secret),
        )
        return await _record(
            deps, sub, "webhook_subscription.recreated", "it was deleted in PagerDuty", created.id
        )
    action: str | None = None
    if state.temporarily_disabled:
        state = await client.enable_webhook_subscription(sub.pd_subscription_id)
        action = await _record(
            deps,
            sub,
            "webhook_subscription.enabled",
            "PagerDuty had disabled it after failed deliveries",
            sub.pd_subscription_id,
        )
    missing = [e for e in WEBHOOK_EVENTS if e not in state.events]
    if not state.active or missing:
        await client.update_webhook_subscription(
            sub.pd_subscription_id, active=True, events=[*state.events, *missing]
        )
        if not state.active:
            action = await _record(
                deps,
                sub,
                "webhook_subscription.switched_on",
                "it had been switched off in PagerDuty",
                sub.pd_subscription_id,
            )
    return action


async def _record(
    deps: Deps, sub: store.Subscription, action: str, reason: str, pd_subscription_id: str
) -> str:
    log.warning(
        "webhook subscription %s of service %s: %s (%s)",
        pd_subscription_id,
        sub.pd_service_id,
        action.split(".")[-1].replace("_", " "),
        reason,
    )
    await insert_audit(
        deps.db,
        tenant_id=sub.tenant_id,
        actor=ACTOR,
        action=action,
        detail={
            "pd_service_id": sub.pd_service_id,
            "pd_subscription_id": pd_subscription_id,
            "reason": reason,
        },
    )
    return action


async def _unstamp(deps: Deps, subscription_ids: list[UUID]) -> None:
    await deps.db.execute(
        "UPDATE webhook_subscriptions SET checked_at = NULL WHERE id = ANY(CAST(:ids AS uuid[]))",
        {"ids": subscription_ids},
    )
