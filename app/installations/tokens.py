"""Access tokens over time: refreshed ahead of expiry, keeping PagerDuty's new refresh token,
and an account marked "needs reconnect" when PagerDuty no longer accepts the grant.

A refresh happens under a lock on the installation's row: PagerDuty rotates the refresh token
on every use, so two workers refreshing at once would leave one holding a dead token."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from app.callbacks.emit import connection_changed
from app.deps import Deps
from app.installations.oauth_flow import oauth_app
from app.installations.store import Installation
from app.pagerduty.errors import OAuthError, RetryLater, Unauthorized
from app.pagerduty.oauth import refresh_tokens
from app.pagerduty.rest import RestClient

# Refresh a token about to be used if it has less than this left.
REFRESH_AHEAD = timedelta(minutes=10)


async def mark_needs_reconnect(deps: Deps, installation_id: UUID, reason: str) -> None:
    await deps.db.execute(
        """
        UPDATE installations SET status = 'needs_reconnect', status_reason = :reason,
            updated_at = now()
        WHERE id = :id
        """,
        {"id": installation_id, "reason": reason},
    )
    await connection_changed(deps.db, "connection.needs_reconnect", installation_id, reason)


async def fresh_access_token(
    deps: Deps, installation_id: UUID, *, ahead: timedelta = REFRESH_AHEAD
) -> str:
    """A usable access token, refreshed first when it expires within `ahead`; Unauthorized
    (after marking the account) when PagerDuty refuses the refresh."""
    refused: OAuthError | None = None
    async with deps.db.transaction():
        row = await deps.db.fetch_one(
            """
            SELECT access_token_enc, refresh_token_enc, token_expires_at, status
            FROM installations WHERE id = :id AND method = 'oauth' FOR UPDATE
            """,
            {"id": installation_id},
        )
        if row is None or row._mapping["access_token_enc"] is None:
            raise Unauthorized("this connection has no access token")
        m = row._mapping
        if m["status"] == "needs_reconnect":
            raise Unauthorized("this connection needs to be reconnected")
        now = deps.clock()
        if m["token_expires_at"] - now > ahead:
            return deps.vault.decrypt(m["access_token_enc"])
        try:
            tokens = await refresh_tokens(
                deps.http,
                deps.pd_hosts,
                oauth_app(deps),
                refresh_token=deps.vault.decrypt(m["refresh_token_enc"]),
                now=now,
            )
        except RetryLater:
            # PagerDuty is away; a token that still works is better than none.
            if m["token_expires_at"] > now:
                return deps.vault.decrypt(m["access_token_enc"])
            raise
        except OAuthError as exc:
            refused = exc
        else:
            await deps.db.execute(
                """
                UPDATE installations SET access_token_enc = :access, refresh_token_enc = :refresh,
                    token_expires_at = :expires_at, updated_at = now()
                WHERE id = :id
                """,
                {
                    "id": installation_id,
                    "access": deps.vault.encrypt(tokens.access_token),
                    "refresh": deps.vault.encrypt(tokens.refresh_token),
                    "expires_at": tokens.expires_at,
                },
            )
            return tokens.access_token
    # Outside the transaction, so the mark is kept.
    await mark_needs_reconnect(
        deps, installation_id, f"PagerDuty refused to renew access: {refused}"
    )
    raise Unauthorized("PagerDuty refused to renew access") from refused


async def rest_client(deps: Deps, installation: Installation) -> RestClient:
    if installation.api_url is None:
        raise Unauthorized("this connection has no REST access")
    token = await fresh_access_token(deps, installation.id)
    return RestClient(deps.http, installation.api_url, token)
