"""PagerDuty's OpenID discovery document: read from the identity host, cached, validated as
untrusted input, and replaced by PagerDuty's published values when it cannot be used."""

from __future__ import annotations

import logging
from typing import Any

import httpx2
import pytest

from app.pagerduty.discovery import (
    CACHE_SECONDS,
    RETRY_SECONDS,
    OpenIdConfiguration,
    OpenIdDiscovery,
)
from app.pagerduty.hosts import PagerDutyHosts, pagerduty_hosts
from tests.pagerduty.conftest import Recorder

DISCOVERY_URL = (
    "https://identity.pagerduty.com/global/oauth/anonymous/.well-known/openid-configuration"
)
PUBLISHED = OpenIdConfiguration(
    issuer="https://app.pagerduty.com/global/oauth/anonymous",
    jwks_uri="https://identity.pagerduty.com/global/oauth/anonymous/jwks",
    discovered=False,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def document(**overrides: Any) -> dict[str, Any]:
    """PagerDuty's document, as served on its identity host."""
    body: dict[str, Any] = {
        "issuer": "https://app.pagerduty.com/global/oauth/anonymous",
        "authorization_endpoint": "https://identity.pagerduty.com/oauth/authorize",
        "token_endpoint": "https://identity.pagerduty.com/oauth/token",
        "jwks_uri": "https://identity.pagerduty.com/global/oauth/anonymous/jwks",
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    body.update(overrides)
    return body


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def discovery(hosts: PagerDutyHosts, clock: Clock) -> OpenIdDiscovery:
    return OpenIdDiscovery(hosts, clock=clock)


async def test_issuer_and_keys_come_from_the_identity_hosts_document(
    http: httpx2.AsyncClient, pd: Recorder, discovery: OpenIdDiscovery
) -> None:
    pd.handler = lambda request: httpx2.Response(200, json=document())
    config = await discovery.configuration(http)
    assert config == OpenIdConfiguration(
        issuer="https://app.pagerduty.com/global/oauth/anonymous",
        jwks_uri="https://identity.pagerduty.com/global/oauth/anonymous/jwks",
        discovered=True,
    )
    [request] = pd.requests
    assert str(request.url) == DISCOVERY_URL
    assert request.method == "GET"


async def test_the_document_is_cached_and_fetched_again_after_its_ttl(
    http: httpx2.AsyncClient, pd: Recorder, discovery: OpenIdDiscovery, clock: Clock
) -> None:
    pd.handler = lambda request: httpx2.Response(200, json=document())
    for _ in range(5):
        assert (await discovery.configuration(http)).discovered
    assert len(pd.requests) == 1
    clock.now += CACHE_SECONDS - 1
    await discovery.configuration(http)
    assert len(pd.requests) == 1
    clock.now += 2
    pd.handler = lambda request: httpx2.Response(
        200, json=document(issuer="https://app.pagerduty.com/global/oauth/rotated")
    )
    assert (await discovery.configuration(http)).issuer.endswith("/rotated")
    assert len(pd.requests) == 2


def _refused_connection(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("connection refused", request=request)


UNUSABLE = {
    "unreachable": _refused_connection,
    "5xx": lambda request: httpx2.Response(503),
    "404": lambda request: httpx2.Response(404),
    "a redirect": lambda request: httpx2.Response(302, headers={"location": "https://x.test"}),
    "not JSON": lambda request: httpx2.Response(200, text="<html>maintenance</html>"),
    "not an object": lambda request: httpx2.Response(200, json=["issuer"]),
    "no issuer": lambda request: httpx2.Response(200, json=document(issuer=None)),
    "issuer not a string": lambda request: httpx2.Response(200, json=document(issuer=42)),
    "issuer over http": lambda request: httpx2.Response(
        200, json=document(issuer="http://app.pagerduty.com/global/oauth/anonymous")
    ),
    "issuer not a URL": lambda request: httpx2.Response(200, json=document(issuer="pagerduty")),
    "issuer with a query": lambda request: httpx2.Response(
        200, json=document(issuer="https://app.pagerduty.com/global/oauth/anonymous?x=1")
    ),
    "issuer with credentials": lambda request: httpx2.Response(
        200, json=document(issuer="https://u:p@app.pagerduty.com/global/oauth/anonymous")
    ),
    "an overlong issuer": lambda request: httpx2.Response(
        200, json=document(issuer="https://app.pagerduty.com/" + "a" * 3000)
    ),
    "no jwks_uri": lambda request: httpx2.Response(200, json=document(jwks_uri=None)),
    "jwks_uri on another host": lambda request: httpx2.Response(
        200, json=document(jwks_uri="https://keys.evil.example/jwks")
    ),
    "jwks_uri over http": lambda request: httpx2.Response(
        200, json=document(jwks_uri="http://identity.pagerduty.com/global/oauth/anonymous/jwks")
    ),
    "jwks_uri with a bad port": lambda request: httpx2.Response(
        200, json=document(jwks_uri="https://identity.pagerduty.com:x/jwks")
    ),
    "too large": lambda request: httpx2.Response(200, json=document(padding="x" * 100_000)),
}


@pytest.mark.parametrize("answer", UNUSABLE.values(), ids=UNUSABLE.keys())
async def test_an_unusable_document_falls_back_to_the_published_values(
    http: httpx2.AsyncClient,
    pd: Recorder,
    discovery: OpenIdDiscovery,
    answer: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pd.handler = answer
    with caplog.at_level(logging.WARNING, logger="pdconnect.pagerduty"):
        assert await discovery.configuration(http) == PUBLISHED
    assert "published issuer https://app.pagerduty.com/global/oauth/anonymous" in caplog.text


async def test_after_a_failure_the_document_is_asked_for_again_later_not_per_token(
    http: httpx2.AsyncClient, pd: Recorder, discovery: OpenIdDiscovery, clock: Clock
) -> None:
    pd.handler = lambda request: httpx2.Response(503)
    for _ in range(5):
        assert await discovery.configuration(http) == PUBLISHED
    assert len(pd.requests) == 1
    pd.handler = lambda request: httpx2.Response(200, json=document())
    clock.now += RETRY_SECONDS + 1
    assert (await discovery.configuration(http)).discovered
    assert len(pd.requests) == 2


async def test_an_identity_override_reads_the_document_from_that_host(
    http: httpx2.AsyncClient, pd: Recorder, clock: Clock
) -> None:
    hosts = pagerduty_hosts(
        identity_url="http://127.0.0.1:8900/identity", app_url="http://127.0.0.1:8900/app"
    )
    pd.handler = lambda request: httpx2.Response(
        200,
        json={
            "issuer": "http://127.0.0.1:8900/app/global/oauth/anonymous",
            "jwks_uri": "http://127.0.0.1:8900/identity/global/oauth/anonymous/jwks",
        },
    )
    config = await OpenIdDiscovery(hosts, clock=clock).configuration(http)
    # http is accepted because the configured identity host itself is http (a sandbox).
    assert config == OpenIdConfiguration(
        issuer="http://127.0.0.1:8900/app/global/oauth/anonymous",
        jwks_uri="http://127.0.0.1:8900/identity/global/oauth/anonymous/jwks",
        discovered=True,
    )
    assert [str(r.url) for r in pd.requests] == [
        "http://127.0.0.1:8900/identity/global/oauth/anonymous/.well-known/openid-configuration"
    ]


async def test_an_overridden_host_falls_back_to_the_published_layout_there(
    http: httpx2.AsyncClient, pd: Recorder, clock: Clock
) -> None:
    hosts = pagerduty_hosts(
        identity_url="http://127.0.0.1:8900/identity", app_url="http://127.0.0.1:8900/app"
    )
    pd.handler = lambda request: httpx2.Response(404)
    assert await OpenIdDiscovery(hosts, clock=clock).configuration(http) == OpenIdConfiguration(
        issuer="http://127.0.0.1:8900/app/global/oauth/anonymous",
        jwks_uri="http://127.0.0.1:8900/identity/global/oauth/anonymous/jwks",
        discovered=False,
    )
