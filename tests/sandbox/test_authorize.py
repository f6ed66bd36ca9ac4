"""The authorize endpoint: consent page, refusals that must never redirect, and the
redirects a client receives."""

from __future__ import annotations

import httpx2
import pytest

from tests.sandbox.flow import (
    ACME_USER,
    REDIRECT_URI,
    Pkce,
    authorize_params,
    query_of,
)


async def test_consent_page_offers_every_seeded_user_and_both_decisions(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.get("/identity/oauth/authorize", params=authorize_params(Pkce()))

    assert response.status_code == 200
    html = response.text
    for email in ("ada@acme.example", "bob@acme.example", "hank@globex.example"):
        assert email in html
    assert "Globex (globex-eu, EU)" in html
    assert "Acme Corp (acme-corp, US)" in html
    assert "name=decision value=approve" in html
    assert "name=decision value=deny" in html
    assert 'id=grant_scope name=grant_scope value="write"' in html


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unknown_client_gets_an_error_page_not_a_redirect(
    client: httpx2.AsyncClient, method: str
) -> None:
    params = authorize_params(Pkce(), client_id="nobody") | {"decision": "approve"}
    if method == "GET":
        response = await client.get("/identity/oauth/authorize", params=params)
    else:
        response = await client.post("/identity/oauth/authorize", data=params | {"user": ACME_USER})

    assert response.status_code == 400
    assert "location" not in response.headers
    assert "Unknown client_id" in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT_URI + "/",
        REDIRECT_URI + "?next=1",
        REDIRECT_URI.upper(),
        "http://evil.example/pagerduty/callback",
        "",
    ],
)
async def test_redirect_uri_must_match_exactly_and_never_redirects(
    client: httpx2.AsyncClient, redirect_uri: str
) -> None:
    params = authorize_params(Pkce(), redirect_uri=redirect_uri)

    response = await client.get("/identity/oauth/authorize", params=params)

    assert response.status_code == 400
    assert "location" not in response.headers


async def test_form_post_is_revalidated_not_trusted(client: httpx2.AsyncClient) -> None:
    form = authorize_params(Pkce(), redirect_uri="http://evil.example/cb") | {
        "user": ACME_USER,
        "decision": "approve",
    }

    response = await client.post("/identity/oauth/authorize", data=form)

    assert response.status_code == 400
    assert "location" not in response.headers


async def test_approve_redirects_with_code_state_and_subdomain(
    client: httpx2.AsyncClient,
) -> None:
    form = authorize_params(Pkce()) | {"user": ACME_USER, "decision": "approve"}

    response = await client.post("/identity/oauth/authorize", data=form)

    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = query_of(location)
    assert query["state"] == "st4te"
    assert query["subdomain"] == "acme-corp"
    assert len(query["code"]) >= 20


async def test_state_is_echoed_only_when_sent(client: httpx2.AsyncClient) -> None:
    form = authorize_params(Pkce()) | {"user": ACME_USER, "decision": "approve"}
    del form["state"]

    response = await client.post("/identity/oauth/authorize", data=form)

    assert response.status_code == 302
    assert "state" not in query_of(response.headers["location"])


async def test_deny_redirects_with_access_denied(client: httpx2.AsyncClient) -> None:
    form = authorize_params(Pkce()) | {"user": ACME_USER, "decision": "deny"}

    response = await client.post("/identity/oauth/authorize", data=form)

    assert response.status_code == 302
    query = query_of(response.headers["location"])
    assert query["error"] == "access_denied"
    assert query["error_description"]
    assert query["state"] == "st4te"
    assert "code" not in query


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
    ],
)
async def test_protocol_errors_go_back_to_the_client(
    client: httpx2.AsyncClient, extra: dict[str, str], error: str
) -> None:
    params = authorize_params(Pkce(), **extra)

    response = await client.get("/identity/oauth/authorize", params=params)

    assert response.status_code == 302
    query = query_of(response.headers["location"])
    assert query["error"] == error
    assert query["state"] == "st4te"


async def test_approve_without_a_user_is_refused(client: httpx2.AsyncClient) -> None:
    form = authorize_params(Pkce()) | {"user": "PNOBODY", "decision": "approve"}

    response = await client.post("/identity/oauth/authorize", data=form)

    assert response.status_code == 400
    assert "location" not in response.headers
