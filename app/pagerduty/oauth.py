"""PagerDuty OAuth 2.0 (authorization code with PKCE, Classic User OAuth).

The token endpoint is driven by authlib's `AsyncOAuth2Client` (request bodies, client
authentication, token parsing, OAuth error answers), sending through the application's shared
httpx2 client; see `_token_endpoint`. The id_token is verified in `id_token`.
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx2
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from app.pagerduty import id_token as _id_token
from app.pagerduty._token_endpoint import TokenAnswer, call_token_endpoint, revoke
from app.pagerduty.discovery import OpenIdDiscovery
from app.pagerduty.errors import ConsentDenied, InsufficientScope, MalformedResponse, OAuthError
from app.pagerduty.hosts import PagerDutyHosts
from app.pagerduty.id_token import Identity

__all__ = [
    "REQUIRED_SCOPE",
    "Identity",
    "OAuthApp",
    "OpenIdDiscovery",
    "Pkce",
    "TokenSet",
    "authorize_url",
    "exchange_code",
    "new_pkce",
    "new_state",
    "pkce_from_verifier",
    "read_callback",
    "refresh_tokens",
    "revoke_token",
    "verify_id_token",
]

# Creating services, integrations and webhook subscriptions needs write access.
REQUIRED_SCOPE = "write"
# 48 random bytes make a 64-character verifier (RFC 7636 allows 43 to 128).
PKCE_VERIFIER_BYTES = 48
STATE_BYTES = 32
CODE_MAX_LENGTH = 2048
# Used only if the token answer omits expires_in: short, so the token is refreshed early.
DEFAULT_EXPIRES_IN = timedelta(hours=1)
# Longer than any documented lifetime (30 days); a larger answer is a bad value.
MAX_EXPIRES_IN = timedelta(days=400)


@dataclass(frozen=True)
class OAuthApp:
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    scope: str = REQUIRED_SCOPE


@dataclass(frozen=True)
class Pkce:
    verifier: str = field(repr=False)
    challenge: str


def pkce_from_verifier(verifier: str) -> Pkce:
    """S256: BASE64URL(SHA256(verifier)) without padding."""
    return Pkce(verifier=verifier, challenge=str(create_s256_code_challenge(verifier)))


def new_pkce() -> Pkce:
    return pkce_from_verifier(secrets.token_urlsafe(PKCE_VERIFIER_BYTES))


def new_state() -> str:
    return secrets.token_urlsafe(STATE_BYTES)


def authorize_url(hosts: PagerDutyHosts, app: OAuthApp, *, state: str, pkce: Pkce) -> str:
    query = urlencode(
        {
            "client_id": app.client_id,
            "redirect_uri": app.redirect_uri,
            "response_type": "code",
            "scope": app.scope,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "state": state,
        }
    )
    return f"{hosts.identity_url}/oauth/authorize?{query}"


def read_callback(params: Mapping[str, str]) -> str:
    """The authorization code from the redirect's query. The caller checks `state` (bound to
    the browser session) before calling."""
    error = params.get("error")
    if error == "access_denied":
        raise ConsentDenied(params.get("error_description"))
    if error:
        raise OAuthError(error, params.get("error_description"))
    code = params.get("code")
    if not code:
        raise OAuthError("missing_code", sentence="PagerDuty sent no authorization code.")
    if len(code) > CODE_MAX_LENGTH:
        raise OAuthError("invalid_code", sentence="The authorization code is too long.")
    return code


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    scopes: frozenset[str]
    id_token: str | None = field(repr=False)


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(UTC)


def _invalid_answer(what: str) -> MalformedResponse:
    return MalformedResponse(f"the token answer has no usable {what}")


def _lifetime(expires_in: object) -> timedelta:
    if expires_in is None:
        return DEFAULT_EXPIRES_IN
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
        raise _invalid_answer("expires_in")
    try:
        seconds = float(expires_in)
    except (ValueError, OverflowError):
        # OverflowError: an integer past float's range, which JSON happily carries.
        raise _invalid_answer("expires_in") from None
    # Also refuses NaN, which compares false with everything.
    if not 0 < seconds <= MAX_EXPIRES_IN.total_seconds():
        raise _invalid_answer("expires_in")
    return timedelta(seconds=seconds)


def _token_set(answer: TokenAnswer, *, requested_scope: str, now: datetime) -> TokenSet:
    token_type = answer.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise _invalid_answer("token_type")
    access_token = answer.get("access_token")
    refresh_token = answer.get("refresh_token")
    if not isinstance(access_token, str) or not access_token:
        raise _invalid_answer("access_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise _invalid_answer("refresh_token")
    lifetime = _lifetime(answer.get("expires_in"))
    # RFC 6749 §5.1: an answer without `scope` granted what was requested.
    scope = answer.get("scope", requested_scope)
    if not isinstance(scope, str):
        raise _invalid_answer("scope")
    id_token = answer.get("id_token")
    if id_token is not None and not isinstance(id_token, str):
        raise _invalid_answer("id_token")
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=_utc(now) + lifetime,
        scopes=frozenset(scope.split()),
        id_token=id_token or None,
    )


async def exchange_code(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    *,
    code: str,
    pkce_verifier: str,
    now: datetime,
) -> TokenSet:
    """Trade the callback's code for tokens. An invalid scope is not refused by PagerDuty (it
    grants only `openid`), so the granted scopes are checked here."""
    if not code:
        raise OAuthError("missing_code", sentence="There is no authorization code to exchange.")
    answer = await call_token_endpoint(
        http,
        hosts,
        app.client_id,
        app.client_secret,
        grant_type="authorization_code",
        redirect_uri=app.redirect_uri,
        code=code,
        code_verifier=pkce_verifier,
    )
    tokens = _token_set(answer, requested_scope=app.scope, now=now)
    if REQUIRED_SCOPE not in tokens.scopes:
        raise InsufficientScope(
            granted=tokens.scopes, required=REQUIRED_SCOPE, access_token=tokens.access_token
        )
    return tokens


async def refresh_tokens(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    *,
    refresh_token: str,
    now: datetime,
) -> TokenSet:
    """New access and refresh tokens; PagerDuty rotates both, so store both at once. The scopes
    are returned, not checked: raising here would lose the rotated refresh token."""
    if not refresh_token:
        raise ValueError("refresh_token must not be empty")
    answer = await call_token_endpoint(
        http,
        hosts,
        app.client_id,
        app.client_secret,
        grant_type="refresh_token",
        refresh_token=refresh_token,
    )
    return _token_set(answer, requested_scope=app.scope, now=now)


async def revoke_token(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, *, token: str
) -> None:
    """PagerDuty does not document this endpoint: callers treat failure as best effort."""
    await revoke(http, hosts, app.client_id, app.client_secret, token=token)


async def verify_id_token(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    id_token: str,
    *,
    now: datetime,
    discovery: OpenIdDiscovery,
) -> Identity:
    """`discovery` (one per application: it caches) says which issuer and keys to trust."""
    return await _id_token.verify(
        http,
        hosts,
        discovery=discovery,
        client_id=app.client_id,
        id_token=id_token,
        now=_utc(now),
    )
