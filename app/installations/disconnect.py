"""Disconnecting a PagerDuty account: undo in PagerDuty what pdconnect did there, then forget.

In order: delete the webhook subscriptions and the integrations pdconnect created (REST, when
the connection still has access), revoke the token (best effort: PagerDuty documents no revoke
endpoint, and a failure never blocks a disconnect; the report then says where the user who
connected the account removes the app's access in PagerDuty), then in one transaction cancel
the account's pending events (kept, marked cancelled with the reason), take its services out
of the routing rules, erase the installation with every secret it held, and write the audit
entry saying what was deleted in PagerDuty and what could not be. What pdconnect did not
create (Simple Install and pasted keys) it cannot delete: the report says which integrations
the admin should delete in PagerDuty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from app.callbacks.emit import connection_changed
from app.deps import Deps
from app.installations import store
from app.installations.oauth_flow import oauth_app
from app.installations.revoke_by_hand import revoke_by_hand
from app.installations.store import Installation, PdService
from app.installations.tokens import rest_client
from app.outbox.services import count_pending
from app.pagerduty.errors import NotFound, PagerDutyError
from app.pagerduty.oauth import revoke_token
from app.pagerduty.rest import RestClient
from app.tenants.store import insert_audit
from app.webhooks import store as webhooks


@dataclass
class DisconnectPlan:
    installation: Installation
    services: list[PdService]
    webhook_subscriptions: int
    pending_events: int
    rules_touched: int

    @property
    def ours(self) -> list[PdService]:
        return [s for s in self.services if s.created_by_us and s.integration_id]

    @property
    def manual_steps(self) -> list[str]:
        return [_manual_step(self.installation, s) for s in self.services if not s.created_by_us]


@dataclass
class DisconnectReport:
    deleted: list[str] = field(default_factory=list)
    not_deleted: list[str] = field(default_factory=list)
    manual_steps: list[str] = field(default_factory=list)
    token_revoked: bool | None = None
    # Set when PagerDuty did not confirm the revocation: where to remove the app's access.
    revoke_yourself: str | None = None
    cancelled_events: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "deleted_in_pagerduty": self.deleted,
            "not_deleted": self.not_deleted,
            "delete_in_pagerduty_yourself": self.manual_steps,
            "token_revoked": self.token_revoked,
            "revoke_access_in_pagerduty_yourself": self.revoke_yourself,
            "cancelled_events": self.cancelled_events,
        }


def _manual_step(installation: Installation, service: PdService) -> str:
    where = f" in PagerDuty account {installation.subdomain}" if installation.subdomain else ""
    if service.pd_service_id is None:
        return f"the integration whose key was pasted as “{service.name}”{where}"
    return f"the integration of {service.name} ({service.pd_service_id}){where}"


async def plan(deps: Deps, installation: Installation) -> DisconnectPlan:
    services = [
        s
        for s in await store.list_services(deps.db, installation.tenant_id)
        if s.installation_id == installation.id
    ]
    ids = [s.id for s in services]
    pending = await count_pending(deps.db, ids)
    rules = await deps.db.fetch_val(
        "SELECT count(*) FROM routes WHERE tenant_id = :t AND service_ids && CAST(:ids AS uuid[])",
        {"t": installation.tenant_id, "ids": ids},
    )
    subscriptions = await webhooks.subscriptions_of(deps.db, installation.id)
    return DisconnectPlan(
        installation=installation,
        services=services,
        webhook_subscriptions=len(subscriptions),
        pending_events=pending,
        rules_touched=int(rules or 0),
    )


async def disconnect(deps: Deps, installation: Installation, *, actor: str) -> DisconnectReport:
    the_plan = await plan(deps, installation)
    report = DisconnectReport(manual_steps=the_plan.manual_steps)
    if installation.method == "oauth":
        await _undo_in_pagerduty(deps, the_plan, report)
    await _forget(deps, the_plan, report, actor=actor)
    return report


async def _undo_in_pagerduty(
    deps: Deps, the_plan: DisconnectPlan, report: DisconnectReport
) -> None:
    installation = the_plan.installation
    try:
        client: RestClient | None = await rest_client(deps, installation)
    except PagerDutyError as exc:
        client = None
        for service in the_plan.ours:
            report.not_deleted.append(
                f"integration {service.integration_id} of {service.name} (PagerDuty: {exc})"
            )
            report.manual_steps.append(_manual_step(installation, service))
    if client is not None:
        for subscription in await webhooks.subscriptions_of(deps.db, installation.id):
            what = f"webhook subscription {subscription.pd_subscription_id}"
            await _delete(
                report, what, client.delete_webhook_subscription(subscription.pd_subscription_id)
            )
        for service in the_plan.ours:
            assert service.pd_service_id is not None
            assert service.integration_id is not None
            what = f"integration {service.integration_id} of {service.name}"
            done = await _delete(
                report,
                what,
                client.delete_integration(
                    service_id=service.pd_service_id, integration_id=service.integration_id
                ),
            )
            if not done:
                report.manual_steps.append(_manual_step(installation, service))
    report.token_revoked = await _revoke(deps, installation)
    if not report.token_revoked:
        report.revoke_yourself = revoke_by_hand(
            pd_user_id=installation.pd_user_id, subdomain=installation.subdomain
        )


async def _delete(report: DisconnectReport, what: str, call: Any) -> bool:
    try:
        await call
    except NotFound:
        report.deleted.append(f"{what} (already gone)")
        return True
    except PagerDutyError as exc:
        report.not_deleted.append(f"{what}: {exc}")
        return False
    report.deleted.append(what)
    return True


async def _revoke(deps: Deps, installation: Installation) -> bool:
    row = await deps.db.fetch_one(
        "SELECT access_token_enc, refresh_token_enc FROM installations WHERE id = :id",
        {"id": installation.id},
    )
    if row is None:
        return False
    revoked = True
    for column in ("refresh_token_enc", "access_token_enc"):
        value = row._mapping[column]
        if value is None:
            continue
        try:
            await revoke_token(
                deps.http, deps.pd_hosts, oauth_app(deps), token=deps.vault.decrypt(value)
            )
        except PagerDutyError:
            revoked = False
    return revoked


async def _forget(
    deps: Deps, the_plan: DisconnectPlan, report: DisconnectReport, *, actor: str
) -> None:
    installation = the_plan.installation
    ids: list[UUID] = [s.id for s in the_plan.services]
    async with deps.db.transaction():
        report.cancelled_events = await store.retire_services(
            deps.db,
            installation.tenant_id,
            ids,
            reason=f"cancelled: the PagerDuty account was disconnected by {actor}",
        )
        await connection_changed(deps.db, "connection.disconnected", installation.id, f"by {actor}")
        # Cascades to its services, their encrypted keys and webhook secrets.
        await deps.db.execute("DELETE FROM installations WHERE id = :id", {"id": installation.id})
        await insert_audit(
            deps.db,
            tenant_id=installation.tenant_id,
            actor=actor,
            action="installation.disconnected",
            detail={
                "installation_id": str(installation.id),
                "subdomain": installation.subdomain,
                "method": installation.method,
                "services": [s.name for s in the_plan.services],
                **report.as_json(),
            },
        )
