"""PagerDuty's error answers: the status codes and bodies a client branches on."""

from __future__ import annotations

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.flow import FakeClock, bearer, connect

UNAUTHORIZED = {"error": {"message": "Unauthorized", "code": 2006}}
NOT_FOUND = {"error": {"message": "Not Found", "code": 2100}}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer pdus+_0XNOPE_00000000-0000-4000-8000-000000000000"},
        {"Authorization": "Bearer "},
        {"Authorization": "Token token=y_NbAkKc66ryYTWUXYEu"},
    ],
)
async def test_missing_or_unknown_token_is_401(
    client: httpx2.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/us/api/services", headers=headers)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_token_sent_without_url_encoding_the_plus_fails(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    # What a client that puts the token in a form body unencoded ends up sending.
    mangled = acme_token.replace("+", " ")

    response = await client.get("/us/api/services", headers=bearer(mangled))

    assert response.status_code == 401


async def test_openid_only_token_is_403(client: httpx2.AsyncClient) -> None:
    token = (await connect(client, scope="bogus"))["access_token"]

    response = await client.get("/us/api/services", headers=bearer(token))

    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["message"], error["code"]) == ("Access Denied", 2010)


async def test_read_token_cannot_write(client: httpx2.AsyncClient) -> None:
    token = (await connect(client, scope="read"))["access_token"]
    body = {
        "service": {
            "type": "service",
            "name": "Read Only",
            "escalation_policy": {"id": "PEPAC01", "type": "escalation_policy_reference"},
        }
    }

    read = await client.get("/us/api/services", headers=bearer(token))
    write = await client.post("/us/api/services", json=body, headers=bearer(token))

    assert read.status_code == 200
    assert write.status_code == 403
    assert write.json()["error"]["code"] == 2010


async def test_another_accounts_service_is_404(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    globex = state.account_by_subdomain("globex-eu")
    assert globex is not None
    foreign = state.services_in(globex.id)[0]

    read = await client.get(f"/us/api/services/{foreign.id}", headers=bearer(acme_token))
    attach = await client.post(
        f"/us/api/services/{foreign.id}/integrations",
        json={"integration": {"type": "events_api_v2_inbound_integration"}},
        headers=bearer(acme_token),
    )

    assert (read.status_code, read.json()) == (404, NOT_FOUND)
    assert (attach.status_code, attach.json()) == (404, NOT_FOUND)


async def test_unknown_path_is_404_with_pagerduty_body(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    response = await client.get("/us/api/nothing/here", headers=bearer(acme_token))

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "100", "offset": "9901"}, 2002),
        ({"limit": "1", "offset": "10000"}, 2002),
        ({"limit": "abc"}, 2001),
        ({"offset": "-1"}, 2001),
        ({"limit": "0"}, 2001),
    ],
)
async def test_bad_paging_is_400(
    client: httpx2.AsyncClient, acme_token: str, params: dict[str, str], code: int
) -> None:
    response = await client.get("/us/api/services", params=params, headers=bearer(acme_token))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["errors"]


async def test_paging_up_to_exactly_10000_is_allowed(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    response = await client.get(
        "/us/api/services", params={"limit": 100, "offset": 9900}, headers=bearer(acme_token)
    )

    assert response.status_code == 200
    assert response.json()["services"] == []


async def test_rate_limit_answers_429_with_headers_then_recovers(
    client: httpx2.AsyncClient, clock: FakeClock, acme_token: str
) -> None:
    await client.post("/_sandbox/control", json={"rest_rate_limit": 3})
    answers = [await client.get("/us/api/services", headers=bearer(acme_token)) for _ in range(4)]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[2].headers["ratelimit-remaining"] == "0"
    limited = answers[3]
    assert limited.json()["error"]["code"] == 2020
    assert 0 < int(limited.headers["ratelimit-reset"]) <= 60
    # Another account of the same app has its own budget.
    initech = (await connect(client, user="PPETER1"))["access_token"]
    assert (await client.get("/us/api/services", headers=bearer(initech))).status_code == 200

    clock.now += 60
    assert (await client.get("/us/api/services", headers=bearer(acme_token))).status_code == 200


async def test_default_rate_limit_is_960_per_minute(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    response = await client.get("/us/api/services", headers=bearer(acme_token))

    assert response.headers["ratelimit-limit"] == "960"
    assert response.headers["ratelimit-remaining"] == "959"
