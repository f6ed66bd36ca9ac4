"""Test helpers: a fixed config, a clock tests can move, and the OAuth dance as a client
does it."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

from pdsandbox import SandboxApp, SandboxConfig, WebhookSettings

BASE_URL = "http://127.0.0.1:8900"
CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
REDIRECT_URI = "http://localhost:8000/pagerduty/callback"
APP_ID = "PTSTAPP"
OTHER_CLIENT_ID = "other-client"
OTHER_SECRET = "other-secret"

ACME_USER = "PADA001"
GLOBEX_USER = "PHANK01"
INITECH_USER = "PPETER1"


# PagerDuty's delivery rules with its delays shrunk: retries after 20, 40, 80 ms, 4 attempts.
FAST_WEBHOOKS = WebhookSettings(
    timeout_seconds=0.3, first_retry_seconds=0.02, max_retry_seconds=0.1, max_attempts=4
)


def sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        base_url=BASE_URL,
        apps=(
            SandboxApp(CLIENT_ID, CLIENT_SECRET, (REDIRECT_URI,), app_id=APP_ID),
            SandboxApp(OTHER_CLIENT_ID, OTHER_SECRET, ("http://other.example/cb",)),
        ),
        webhooks=FAST_WEBHOOKS,
    )


@dataclass
class FakeClock:
    now: float = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def authorize_params(pkce: Pkce | None, scope: str = "write", **extra: str) -> dict[str, str]:
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": scope,
        "state": "st4te",
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    return params | extra


async def approve(
    client: httpx2.AsyncClient,
    pkce: Pkce | None,
    *,
    user: str = ACME_USER,
    scope: str = "write",
    grant_scope: str | None = None,
) -> str:
    """Submit the consent form as the user would and return the authorization code."""
    form = authorize_params(pkce, scope) | {"user": user, "decision": "approve"}
    if grant_scope is not None:
        form["grant_scope"] = grant_scope
    response = await client.post("/identity/oauth/authorize", data=form)
    assert response.status_code == 302, response.text
    return query_of(response.headers["location"])["code"]


async def exchange(
    client: httpx2.AsyncClient, code: str, pkce: Pkce | None, /, **overrides: str | None
) -> httpx2.Response:
    form: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce.verifier if pkce else None,
    } | overrides
    data = {k: v for k, v in form.items() if v is not None}
    return await client.post("/identity/oauth/token", data=data)


async def connect(
    client: httpx2.AsyncClient,
    *,
    user: str = ACME_USER,
    scope: str = "write",
    grant_scope: str | None = None,
) -> dict[str, Any]:
    """The whole OAuth flow with PKCE; returns the token response body."""
    pkce = Pkce()
    code = await approve(client, pkce, user=user, scope=scope, grant_scope=grant_scope)
    response = await exchange(client, code, pkce)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(client: httpx2.AsyncClient, refresh_token: str) -> httpx2.Response:
    return await client.post(
        "/identity/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
        },
    )


def bearer(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.pagerduty+json;version=2",
    }
