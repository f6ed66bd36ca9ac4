"""Connect by PagerDuty's Simple Install Flow.

Our state rides inside `redirect_url` (PagerDuty passes extra query parameters back), and the
`config` PagerDuty appends is untrusted: it came through the browser, unsigned. It is parsed by
`app.pagerduty.install`, which refuses anything malformed naming the field. The account's
region is not in `config`, so the deployment's PAGERDUTY_REGION decides the events host.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from app.deps import Deps
from app.installations import store
from app.pagerduty.errors import InvalidInstallConfig
from app.pagerduty.install import install_url, parse_install_config
from app.pagerduty.oauth import new_state
from app.tenants.store import insert_audit
from app.web.pages import flash, redirect


def start_install(deps: Deps) -> tuple[dict[str, Any], str]:
    settings = deps.settings
    assert settings.pagerduty_app_id is not None
    state = new_state()
    redirect_url = f"{settings.oauth_redirect_uri}?{urlencode({'state': state})}"
    url = install_url(deps.pd_hosts, app_id=settings.pagerduty_app_id, redirect_url=redirect_url)
    return {"method": "install", "state": state}, url


async def finish_install(
    request: Request, deps: Deps, tenant_id: UUID, params: dict[str, str]
) -> Response:
    raw = params.get("config")
    if raw is None:
        flash(request, "error", "PagerDuty sent no integration keys back. Nothing was saved.")
        return redirect("/settings")
    try:
        config = parse_install_config(raw)
    except InvalidInstallConfig as exc:
        flash(request, "error", f"PagerDuty's answer could not be used ({exc}). Nothing was saved.")
        return redirect("/settings")

    region = deps.settings.pagerduty_region
    events_url = deps.pd_hosts.region(region).events_url
    try:
        async with deps.db.transaction():
            installation = await store.upsert_keyed_installation(
                deps.db,
                tenant_id=tenant_id,
                method="simple_install",
                account_key=config.subdomain,
                subdomain=config.subdomain,
                account_name=config.account_name or None,
                region=region,
                events_url=events_url,
            )
            for key in config.keys:
                await store.upsert_pd_service(
                    deps.db,
                    tenant_id=tenant_id,
                    installation_id=installation.id,
                    pd_service_id=key.id,
                    name=key.name,
                    kind=key.type,
                    integration_id=None,
                    created_by_us=False,
                    routing_key_enc=deps.vault.encrypt(key.integration_key),
                    routing_key_hash=deps.routing_key_hasher.digest(key.integration_key),
                )
            await insert_audit(
                deps.db,
                tenant_id=tenant_id,
                actor="tenant admin",
                action="installation.connected",
                detail={
                    "installation_id": str(installation.id),
                    "subdomain": config.subdomain,
                    "method": "simple_install",
                    "keys": [{"id": k.id, "name": k.name, "type": k.type} for k in config.keys],
                },
            )
    except asyncpg.UniqueViolationError:
        flash(
            request,
            "error",
            "One of these integration keys is already connected in another way (for example "
            "pasted by hand). Remove it there first. Nothing was saved.",
        )
        return redirect("/settings")
    count = len(config.keys)
    flash(
        request,
        "ok",
        f"Connected {count} integration key{'s' if count != 1 else ''} from PagerDuty account "
        f"{config.subdomain}.",
    )
    return redirect("/settings")
