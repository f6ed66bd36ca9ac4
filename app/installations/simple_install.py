"""Connect by PagerDuty's Simple Install Flow.

Our state rides inside `redirect_url` (PagerDuty passes extra query parameters back), and the
`config` PagerDuty appends is untrusted: it came through the browser, unsigned. It is parsed by
`app.pagerduty.install`, which refuses anything malformed naming the field.

The account's region is not in `config` either, so the admin names it before leaving for
PagerDuty (`app.installations.regions`); the install page is the US one for both regions. The
region rides inside our state, "<region>.<random>": the callback accepts only the state kept in
the session, so a region read from it is the one chosen here, never one a crafted callback URL
brought.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import asyncpg

from app.deps import Deps
from app.errors import InputError
from app.installations import caps, store
from app.installations.outcome import Connected, ConnectRefused
from app.installations.regions import REGION_LABELS
from app.pagerduty.errors import InvalidInstallConfig
from app.pagerduty.hosts import REGIONS
from app.pagerduty.install import install_url, parse_install_config
from app.pagerduty.oauth import new_state
from app.tenants.store import insert_audit

# new_state() is URL-safe base64, which has no ".".
_REGION_SEPARATOR = "."


class _RegionChanged(Exception):
    def __init__(self, stored: str) -> None:
        super().__init__(stored)
        self.stored = stored


def start_install(deps: Deps, region: str | None = None) -> tuple[dict[str, Any], str]:
    """`region` is one of REGIONS, checked by the caller; None is the deployment's."""
    cfg = deps.config
    assert cfg.pagerduty_app_id is not None
    state = f"{region or cfg.pagerduty_region}{_REGION_SEPARATOR}{new_state()}"
    redirect_url = f"{cfg.oauth_redirect_uri}?{urlencode({'state': state})}"
    url = install_url(deps.pd_hosts, app_id=cfg.pagerduty_app_id, redirect_url=redirect_url)
    return {"method": "install", "state": state}, url


def region_of_state(state: str, default: str) -> str:
    """The region start_install put in `state`. Call only with a state already matched
    against the session's; one from before regions were chosen carries none."""
    region, separator, _ = state.partition(_REGION_SEPARATOR)
    return region if separator and region in REGIONS else default


async def finish_install(deps: Deps, tenant_id: UUID, params: dict[str, str]) -> Connected:
    """Raises ConnectRefused when nothing was saved."""
    raw = params.get("config")
    if raw is None:
        raise ConnectRefused("PagerDuty sent no integration keys back. Nothing was saved.")
    try:
        config = parse_install_config(raw)
    except InvalidInstallConfig as exc:
        raise ConnectRefused(
            f"PagerDuty's answer could not be used ({exc}). Nothing was saved."
        ) from exc

    # The caller (connect.callback) has matched this state against the session's.
    region = region_of_state(params.get("state", ""), deps.config.pagerduty_region)
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
            if installation.region != region:
                # The upsert keeps an account's region; a different answer now means one of
                # the two is wrong, and silently keeping either could send pages nowhere.
                raise _RegionChanged(installation.region)
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
            await caps.check_cap(deps, tenant_id)
            await insert_audit(
                deps.db,
                tenant_id=tenant_id,
                actor="tenant admin",
                action="installation.connected",
                detail={
                    "installation_id": str(installation.id),
                    "subdomain": config.subdomain,
                    "method": "simple_install",
                    "region": region,
                    "keys": [{"id": k.id, "name": k.name, "type": k.type} for k in config.keys],
                },
            )
    except InputError as exc:
        raise ConnectRefused(f"{exc.message}. Nothing was saved.") from exc
    except asyncpg.UniqueViolationError as exc:
        raise ConnectRefused(
            "One of these integration keys is already connected in another way (for example "
            "pasted by hand). Remove it there first. Nothing was saved."
        ) from exc
    except _RegionChanged as exc:
        raise ConnectRefused(
            f"PagerDuty account {config.subdomain} is already connected as an account of the "
            f"{REGION_LABELS[exc.stored]} region, not {REGION_LABELS[region]}. To change its "
            "region, disconnect it first, then connect again. Nothing was saved."
        ) from exc
    count = len(config.keys)
    summary = (
        f"Connected {count} integration key{'s' if count != 1 else ''} from PagerDuty account "
        f"{config.subdomain}. Its events go to PagerDuty's {REGION_LABELS[region]} region."
    )
    return Connected(notices=(("ok", summary),), pick_services_of=None)
