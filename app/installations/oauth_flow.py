"""Connect by OAuth: authorize with state and PKCE, exchange the code, verify the id_token,
store the installation with its tokens encrypted, then on to the service picker. The connect
routes are app/settings/connect.py: they show what `finish_oauth` returns or raises."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from app.deps import Deps
from app.incidents.notes import acting_user
from app.installations import store
from app.installations.health import repair_installation
from app.installations.outcome import Connected, ConnectRefused, Notice
from app.installations.revoke_by_hand import revoke_refused_grant
from app.pagerduty.errors import (
    ConsentDenied,
    InsufficientScope,
    InvalidIdToken,
    OAuthError,
    PagerDutyError,
    RetryLater,
)
from app.pagerduty.incidents import IncidentsClient
from app.pagerduty.oauth import (
    OAuthApp,
    authorize_url,
    exchange_code,
    new_pkce,
    new_state,
    read_callback,
    revoke_token,
    verify_id_token,
)
from app.pagerduty.rest import RestClient
from app.tenants.store import insert_audit

log = logging.getLogger("pdconnect.connect")


def oauth_app(deps: Deps) -> OAuthApp:
    s = deps.config
    assert s.pagerduty_client_id is not None
    assert s.pagerduty_client_secret is not None
    return OAuthApp(
        client_id=s.pagerduty_client_id,
        client_secret=s.pagerduty_client_secret,
        redirect_uri=s.oauth_redirect_uri,
    )


def start_oauth(deps: Deps) -> tuple[dict[str, Any], str]:
    state = new_state()
    pkce = new_pkce()
    url = authorize_url(deps.pd_hosts, oauth_app(deps), state=state, pkce=pkce)
    return {"method": "oauth", "state": state, "verifier": pkce.verifier}, url


def _refusal_message(exc: PagerDutyError, *, revoked: bool = True) -> str:
    """`revoked` False: PagerDuty issued a token we refused and did not confirm revoking it."""
    leftover = "" if revoked else f" {revoke_refused_grant()}"
    return _refusal(exc) + leftover


def _refusal(exc: PagerDutyError) -> str:
    if isinstance(exc, ConsentDenied):
        return "PagerDuty access was not approved, so nothing was connected."
    if isinstance(exc, InsufficientScope):
        return (
            "PagerDuty granted read-only or no access. pdconnect needs write access to create "
            "integrations; nothing was saved. Connect again and approve write access."
        )
    if isinstance(exc, InvalidIdToken):
        return f"PagerDuty's identity token could not be verified ({exc}). Nothing was saved."
    if isinstance(exc, RetryLater):
        return "PagerDuty did not answer in time. Nothing was saved; please try again."
    return f"PagerDuty refused the connection ({exc}). Nothing was saved; please try again."


async def finish_oauth(
    deps: Deps, tenant_id: UUID, params: dict[str, str], attempt: dict[str, Any]
) -> Connected:
    """Raises ConnectRefused when nothing was saved."""
    app = oauth_app(deps)
    verifier = attempt.get("verifier")
    try:
        code = read_callback(params)
        if not isinstance(verifier, str):
            raise OAuthError("invalid_request", "the connect attempt lost its PKCE verifier")
        tokens = await exchange_code(
            deps.http, deps.pd_hosts, app, code=code, pkce_verifier=verifier, now=deps.clock()
        )
    except InsufficientScope as exc:
        revoked = False
        if exc.access_token:
            revoked = await _revoke_quietly(deps, app, exc.access_token)
        raise ConnectRefused(_refusal_message(exc, revoked=revoked)) from exc
    except PagerDutyError as exc:
        raise ConnectRefused(_refusal_message(exc)) from exc
    try:
        if tokens.id_token is None:
            raise InvalidIdToken("PagerDuty sent no id_token")
        identity = await verify_id_token(
            deps.http,
            deps.pd_hosts,
            app,
            tokens.id_token,
            now=deps.clock(),
            discovery=deps.pd_openid,
        )
    except PagerDutyError as exc:
        revoked = await _revoke_quietly(deps, app, tokens.access_token)
        raise ConnectRefused(_refusal_message(exc, revoked=revoked)) from exc

    async with deps.db.transaction():
        installation, created = await store.upsert_oauth_installation(
            deps.db,
            tenant_id=tenant_id,
            account_id=identity.account_id,
            subdomain=identity.subdomain,
            region=identity.region,
            api_url=identity.api_url,
            events_url=identity.events_url,
            pd_user_id=identity.user_id,
            access_token_enc=deps.vault.encrypt(tokens.access_token),
            refresh_token_enc=deps.vault.encrypt(tokens.refresh_token),
            token_expires_at=tokens.expires_at,
            scopes=" ".join(sorted(tokens.scopes)),
        )
        await insert_audit(
            deps.db,
            tenant_id=tenant_id,
            actor=f"pagerduty user {identity.user_id}",
            action="installation.connected" if created else "installation.reconnected",
            detail={
                "installation_id": str(installation.id),
                "subdomain": identity.subdomain,
                "region": identity.region,
                "method": "oauth",
            },
        )
    await _learn_who_connected(deps, installation.id, identity.api_url, tokens.access_token)
    notices: list[Notice] = []
    if not created:
        # A reconnect repairs: integrations deleted meanwhile are created again, and events
        # held for their services go out.
        client = RestClient(deps.http, identity.api_url, tokens.access_token)
        try:
            repaired = await repair_installation(deps, installation, client)
        except PagerDutyError as exc:
            notices.append(("error", f"Reconnected, but checking the services failed: {exc}"))
            repaired = 0
        if repaired:
            notices.append(("ok", f"Restored delivery to {repaired} service(s)."))
    verb = "Connected" if created else "Reconnected"
    notices.append(
        ("ok", f"{verb} PagerDuty account {identity.subdomain}. Choose the services to page.")
    )
    return Connected(notices=tuple(notices), pick_services_of=installation.id)


async def _learn_who_connected(
    deps: Deps, installation_id: UUID, api_url: str, access_token: str
) -> None:
    """The name and email of the PagerDuty user who connected (GET /users/me): the activity
    page names them, and notes are added in their name. The id_token gives only their id; a
    failure here costs nothing but the name (notes look it up again when they need it)."""
    client = IncidentsClient(deps.http, api_url, access_token)
    try:
        await acting_user(deps, installation_id, client)
    except PagerDutyError as exc:
        log.info("who connected the account is not known yet: %s", exc)


async def _revoke_quietly(deps: Deps, app: OAuthApp, token: str) -> bool:
    """A token we will not keep is revoked best-effort (PagerDuty documents no revoke
    endpoint); failing changes nothing but the message. Whether PagerDuty confirmed it."""
    try:
        await revoke_token(deps.http, deps.pd_hosts, app, token=token)
    except PagerDutyError:
        return False
    return True
