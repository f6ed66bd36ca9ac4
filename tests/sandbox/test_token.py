"""The token and revoke endpoints: the happy path, and each way a client gets refused."""

from __future__ import annotations

import base64

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.flow import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_CLIENT_ID,
    OTHER_SECRET,
    REDIRECT_URI,
    FakeClock,
    Pkce,
    approve,
    bearer,
    connect,
    exchange,
    refresh,
)

SERVICES = "/us/api/services"
DISCOVERY = "/identity/global/oauth/anonymous/.well-known/openid-configuration"


@pytest.fixture
async def revoke_served(client: httpx2.AsyncClient) -> None:
    """PagerDuty documents no revoke endpoint; these tests switch the sandbox's on."""
    response = await client.post("/_sandbox/control", json={"revoke_endpoint": "present"})
    assert response.json()["revoke_endpoint"] == "present"


async def test_revoke_is_an_unknown_path_by_default(client: httpx2.AsyncClient) -> None:
    tokens = await connect(client)

    revoked = await client.post(
        "/identity/oauth/revoke",
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "token": tokens["access_token"],
        },
    )
    unknown = await client.post("/identity/oauth/no-such-endpoint", data={"token": "x"})

    assert (revoked.status_code, revoked.text) == (unknown.status_code, unknown.text)
    assert revoked.status_code == 404
    assert (await client.get(SERVICES, headers=bearer(tokens["access_token"]))).status_code == 200
    assert "revocation_endpoint" not in (await client.get(DISCOVERY)).json()


@pytest.mark.usefixtures("revoke_served")
async def test_a_served_revoke_endpoint_is_in_the_discovery_document(
    client: httpx2.AsyncClient,
) -> None:
    document = (await client.get(DISCOVERY)).json()
    assert document["revocation_endpoint"].endswith("/identity/oauth/revoke")


@pytest.mark.usefixtures("revoke_served")
async def test_full_path_authorize_token_refresh_revoke(client: httpx2.AsyncClient) -> None:
    pkce = Pkce()
    code = await approve(client, pkce)

    first = await exchange(client, code, pkce)
    assert first.status_code == 200
    body = first.json()
    assert list(body) == [
        "client_info", "id_token", "token_type", "access_token",
        "refresh_token", "scope", "expires_in",
    ]  # fmt: skip
    assert body["client_info"] == "prefix_legacy_app"
    assert body["token_type"] == "bearer"
    assert body["access_token"].startswith("pdus+_0X")
    assert body["refresh_token"].startswith("pdus+_1X")
    assert body["scope"] == "openid write"
    assert body["expires_in"] == 864000
    assert first.headers["cache-control"] == "no-store"
    assert (await client.get(SERVICES, headers=bearer(body["access_token"]))).status_code == 200

    rotated = await refresh(client, body["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert set(new) == {"token_type", "access_token", "refresh_token", "scope", "expires_in"}
    assert new["access_token"] != body["access_token"]
    assert new["refresh_token"] != body["refresh_token"]
    assert new["scope"] == "openid write"
    # The spent refresh token is dead; the new one works.
    stale = await refresh(client, body["refresh_token"])
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    assert (await client.get(SERVICES, headers=bearer(new["access_token"]))).status_code == 200

    revoked = await client.post(
        "/identity/oauth/revoke",
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "token": new["refresh_token"],
        },
    )
    assert revoked.status_code == 200
    assert revoked.json() == {}
    assert (await client.get(SERVICES, headers=bearer(new["access_token"]))).status_code == 401
    assert (await refresh(client, new["refresh_token"])).json()["error"] == "invalid_grant"


@pytest.mark.usefixtures("revoke_served")
async def test_revoking_the_access_token_kills_the_refresh_token(
    client: httpx2.AsyncClient,
) -> None:
    tokens = await connect(client)

    await client.post(
        "/identity/oauth/revoke",
        data={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "token": tokens["access_token"],
        },
    )

    assert (await refresh(client, tokens["refresh_token"])).status_code == 400


@pytest.mark.usefixtures("revoke_served")
async def test_revoke_needs_the_client_secret(client: httpx2.AsyncClient) -> None:
    tokens = await connect(client)

    response = await client.post(
        "/identity/oauth/revoke",
        data={"client_id": CLIENT_ID, "client_secret": "wrong", "token": tokens["access_token"]},
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert (await client.get(SERVICES, headers=bearer(tokens["access_token"]))).status_code == 200


async def test_http_basic_client_authentication_is_accepted(client: httpx2.AsyncClient) -> None:
    pkce = Pkce()
    code = await approve(client, pkce)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()

    response = await client.post(
        "/identity/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": pkce.verifier,
        },
        headers={"Authorization": f"Basic {basic}"},
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_secret": None}, 401, "invalid_client"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"redirect_uri": REDIRECT_URI + "/"}, 400, "invalid_grant"),
        ({"redirect_uri": None}, 400, "invalid_grant"),
        ({"code_verifier": Pkce().verifier}, 400, "invalid_grant"),
        ({"code_verifier": None}, 400, "invalid_grant"),
        ({"code": "not-a-code"}, 400, "invalid_grant"),
        ({"code": None}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": None}, 400, "invalid_request"),
    ],
)
async def test_code_exchange_refusals(
    client: httpx2.AsyncClient, overrides: dict[str, str | None], status: int, error: str
) -> None:
    pkce = Pkce()
    code = await approve(client, pkce)

    response = await exchange(client, code, pkce, **overrides)

    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    # A refused attempt does not burn the code for the rightful client.
    assert (await exchange(client, code, pkce)).status_code == 200


async def test_code_of_another_client_is_refused(client: httpx2.AsyncClient) -> None:
    pkce = Pkce()
    code = await approve(client, pkce)

    response = await exchange(
        client, code, pkce, client_id=OTHER_CLIENT_ID, client_secret=OTHER_SECRET
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_verifier_without_challenge_is_refused(client: httpx2.AsyncClient) -> None:
    code = await approve(client, None)

    downgraded = await exchange(client, code, None, code_verifier=Pkce().verifier)
    plain = await exchange(client, code, None)

    assert downgraded.json()["error"] == "invalid_grant"
    assert plain.status_code == 200  # PKCE is optional for confidential clients


@pytest.mark.parametrize(("age", "ok"), [(29, True), (31, False)])
async def test_code_lives_30_seconds(
    client: httpx2.AsyncClient, clock: FakeClock, age: float, ok: bool
) -> None:
    pkce = Pkce()
    code = await approve(client, pkce)
    clock.now += age

    response = await exchange(client, code, pkce)

    assert (response.status_code == 200) is ok
    if not ok:
        assert response.json()["error"] == "invalid_grant"


async def test_sandbox_clock_control_expires_codes(client: httpx2.AsyncClient) -> None:
    pkce = Pkce()
    code = await approve(client, pkce)

    advanced = await client.post("/_sandbox/clock/advance", json={"seconds": 31})

    assert advanced.status_code == 200
    assert (await exchange(client, code, pkce)).json()["error"] == "invalid_grant"


async def test_reused_code_is_refused_and_revokes_what_it_gave(
    client: httpx2.AsyncClient,
) -> None:
    pkce = Pkce()
    code = await approve(client, pkce)
    first = (await exchange(client, code, pkce)).json()

    second = await exchange(client, code, pkce)

    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert (await client.get(SERVICES, headers=bearer(first["access_token"]))).status_code == 401
    assert (await refresh(client, first["refresh_token"])).status_code == 400


async def test_token_endpoint_takes_only_form_bodies(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        "/identity/oauth/token",
        json={"grant_type": "refresh_token", "client_id": CLIENT_ID},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_refresh_token_of_another_client_is_refused(client: httpx2.AsyncClient) -> None:
    tokens = await connect(client)

    response = await client.post(
        "/identity/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": OTHER_CLIENT_ID,
            "client_secret": OTHER_SECRET,
            "refresh_token": tokens["refresh_token"],
        },
    )

    assert response.json()["error"] == "invalid_grant"


async def test_access_token_expires_by_the_clock_and_refresh_recovers(
    client: httpx2.AsyncClient, clock: FakeClock
) -> None:
    tokens = await connect(client)
    clock.now += tokens["expires_in"] + 1

    expired = await client.get(SERVICES, headers=bearer(tokens["access_token"]))
    renewed = await refresh(client, tokens["refresh_token"])

    assert expired.status_code == 401
    assert renewed.status_code == 200
    fresh = renewed.json()["access_token"]
    assert (await client.get(SERVICES, headers=bearer(fresh))).status_code == 200


async def test_refresh_token_expires_after_210_days(
    client: httpx2.AsyncClient, clock: FakeClock
) -> None:
    tokens = await connect(client)
    clock.now += 210 * 86400 + 1

    assert (await refresh(client, tokens["refresh_token"])).json()["error"] == "invalid_grant"


async def test_expire_control_expires_an_accounts_access_tokens(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    acme = await connect(client)
    initech = await connect(client, user="PPETER1")

    response = await client.post("/_sandbox/tokens/expire", json={"subdomain": "acme-corp"})

    assert response.json() == {"expired": 1}
    assert (await client.get(SERVICES, headers=bearer(acme["access_token"]))).status_code == 401
    assert (await client.get(SERVICES, headers=bearer(initech["access_token"]))).status_code == 200
    renewed = await refresh(client, acme["refresh_token"])
    assert renewed.status_code == 200
    fresh = renewed.json()["access_token"]
    assert (await client.get(SERVICES, headers=bearer(fresh))).status_code == 200


async def test_revoke_control_revokes_every_grant_of_the_account(
    client: httpx2.AsyncClient,
) -> None:
    tokens = await connect(client)

    response = await client.post("/_sandbox/tokens/revoke", json={"subdomain": "acme-corp"})

    assert response.json() == {"revoked_grants": 1}
    assert (await client.get(SERVICES, headers=bearer(tokens["access_token"]))).status_code == 401
    refused = await refresh(client, tokens["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("scope", "grant_scope", "granted"),
    [
        ("write", None, "openid write"),
        ("read", None, "openid read"),
        ("read write", "read", "openid read"),
        ("services.read", None, "openid"),
        ("write", "", "openid"),
    ],
)
async def test_scope_is_narrowed_silently_never_refused(
    client: httpx2.AsyncClient, scope: str, grant_scope: str | None, granted: str
) -> None:
    tokens = await connect(client, scope=scope, grant_scope=grant_scope)

    assert tokens["scope"] == granted
