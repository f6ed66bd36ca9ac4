"""PagerDuty's own sample id_token claims, verified through the product's path: the discovery
document and the JWKS served on the identity host, the issuer on the app host.

The claims are PagerDuty's documented sample payload (PagerDuty/developer-docs,
docs/app-integration-development/07-PagerDuty-OpenId-Token.md), signed here with a test key
since PagerDuty's signature cannot be reproduced. Their issuer is the one PagerDuty's discovery
document names, on the app host: so did this sample until a 2022 sweep of the docs moved every
URL to `identity.` (the sample token encoded on the same page, from PagerDuty's staging, still
carries `https://app.pd-staging.com/global/oauth/anonymous`). A token with the `identity.`
issuer the prose names is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.pagerduty.discovery import OpenIdDiscovery
from app.pagerduty.errors import InvalidIdToken
from app.pagerduty.hosts import PagerDutyHosts
from app.pagerduty.oauth import Identity, OAuthApp, verify_id_token
from tests.pagerduty.conftest import CLIENT_SECRET, REDIRECT_URI, Recorder

SAMPLE_CLAIMS: dict[str, Any] = {
    "exp": 1646086260,
    "nbf": 1646082660,
    "jti": "a9fd43a4-b037-4eeb-98b0-40542e3b98ff",
    "iss": "https://app.pagerduty.com/global/oauth/anonymous",
    "aud": ["https://api.pagerduty.com", "90b153bf-cfeb-4837-8b6a-864b7ff85656"],
    "sub": "example@pagerduty.com",
    "auth_time": 1646082649,
    "iat": 1646082660,
    "purpose": "id",
    "at_hash": "LMtFKMLYeFeziNtx9PJWHA",
    "acr": "acr:html-form:unitedstates",
    "delegation_id": "6566027d-7707-428f-8752-3ef971b78d1a",
    "account_id": "P9JEHMK",
    "user_id": "P8OGMIK",
    "azp": "90b153bf-cfeb-4837-8b6a-864b7ff85656",
    "amr": "acr:html-form:unitedstates",
    "subdomain": "pdt-sample",
    "region": "UnitedStates",
    "sid": "Ldu2m7FqnP7cH6Gl",
}
SAMPLE_CLIENT_ID = "90b153bf-cfeb-4837-8b6a-864b7ff85656"
SAMPLE_KID = "1787345008"  # the kid of PagerDuty's sample header
# A minute after the sample was issued: it is valid then.
SAMPLE_NOW = datetime.fromtimestamp(1646082660 + 60, UTC)
OLD_ISSUER = "https://identity.pagerduty.com/global/oauth/anonymous"
DISCOVERY_URL = (
    "https://identity.pagerduty.com/global/oauth/anonymous/.well-known/openid-configuration"
)
JWKS_URL = "https://identity.pagerduty.com/global/oauth/anonymous/jwks"


@pytest.fixture(scope="module")
def key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": SAMPLE_KID, "use": "sig", "alg": "RS256"})


@pytest.fixture
def sample_app() -> OAuthApp:
    return OAuthApp(
        client_id=SAMPLE_CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI
    )


@pytest.fixture
def identity_host(pd: Recorder, key: RSAKey) -> Recorder:
    """PagerDuty's identity host: its discovery document and its keys."""
    routes = {
        DISCOVERY_URL: {
            "issuer": "https://app.pagerduty.com/global/oauth/anonymous",
            "authorization_endpoint": "https://identity.pagerduty.com/oauth/authorize",
            "token_endpoint": "https://identity.pagerduty.com/oauth/token",
            "jwks_uri": JWKS_URL,
            "id_token_signing_alg_values_supported": ["RS256"],
        },
        JWKS_URL: {"keys": [dict(key.as_dict(private=False))]},
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = routes.get(str(request.url))
        return httpx2.Response(404) if body is None else httpx2.Response(200, json=body)

    pd.handler = handler
    return pd


def signed(key: RSAKey, claims: dict[str, Any]) -> str:
    return jwt.encode({"alg": "RS256", "kid": SAMPLE_KID, "typ": "JWT"}, claims, key)


async def test_pagerdutys_sample_claims_pass(
    http: httpx2.AsyncClient,
    identity_host: Recorder,
    hosts: PagerDutyHosts,
    sample_app: OAuthApp,
    key: RSAKey,
) -> None:
    identity = await verify_id_token(
        http,
        hosts,
        sample_app,
        signed(key, SAMPLE_CLAIMS),
        now=SAMPLE_NOW,
        discovery=OpenIdDiscovery(hosts),
    )
    assert identity == Identity(
        account_id="P9JEHMK",
        user_id="P8OGMIK",
        subdomain="pdt-sample",
        region="us",
        api_url="https://api.pagerduty.com",
        events_url="https://events.pagerduty.com",
    )
    assert [str(r.url) for r in identity_host.requests] == [DISCOVERY_URL, JWKS_URL]


async def test_the_identity_issuer_of_the_prose_page_is_refused(
    http: httpx2.AsyncClient,
    identity_host: Recorder,
    hosts: PagerDutyHosts,
    sample_app: OAuthApp,
    key: RSAKey,
) -> None:
    token = signed(key, {**SAMPLE_CLAIMS, "iss": OLD_ISSUER})
    with pytest.raises(InvalidIdToken, match="'iss'"):
        await verify_id_token(
            http, hosts, sample_app, token, now=SAMPLE_NOW, discovery=OpenIdDiscovery(hosts)
        )


async def test_without_the_document_the_published_values_still_decide(
    http: httpx2.AsyncClient,
    pd: Recorder,
    hosts: PagerDutyHosts,
    sample_app: OAuthApp,
    key: RSAKey,
) -> None:
    """The identity host serves keys but its discovery document is down."""
    jwks = {"keys": [dict(key.as_dict(private=False))]}
    pd.handler = lambda request: (
        httpx2.Response(200, json=jwks) if str(request.url) == JWKS_URL else httpx2.Response(503)
    )
    discovery = OpenIdDiscovery(hosts)
    identity = await verify_id_token(
        http, hosts, sample_app, signed(key, SAMPLE_CLAIMS), now=SAMPLE_NOW, discovery=discovery
    )
    assert identity.subdomain == "pdt-sample"
    with pytest.raises(InvalidIdToken, match="'iss'"):
        await verify_id_token(
            http,
            hosts,
            sample_app,
            signed(key, {**SAMPLE_CLAIMS, "iss": OLD_ISSUER}),
            now=SAMPLE_NOW,
            discovery=discovery,
        )
    # The document was asked for once; the keys for each token.
    assert [str(r.url) for r in pd.requests] == [DISCOVERY_URL, JWKS_URL, JWKS_URL]


async def test_one_discovery_serves_many_tokens(
    http: httpx2.AsyncClient,
    identity_host: Recorder,
    hosts: PagerDutyHosts,
    sample_app: OAuthApp,
    key: RSAKey,
) -> None:
    discovery = OpenIdDiscovery(hosts)
    for subdomain in ("pdt-one", "pdt-two", "pdt-three"):
        token = signed(key, {**SAMPLE_CLAIMS, "subdomain": subdomain})
        identity = await verify_id_token(
            http, hosts, sample_app, token, now=SAMPLE_NOW, discovery=discovery
        )
        assert identity.subdomain == subdomain
    urls = [str(r.url) for r in identity_host.requests]
    assert urls.count(DISCOVERY_URL) == 1
    assert urls.count(JWKS_URL) == 3  # keys rotate: fetched for each verification
