"""Creating services and integrations, and what the sandbox records of them."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.flow import CLIENT_ID, bearer

POLICY = {"id": "PEPAC02", "type": "escalation_policy_reference"}


def _service_body(**fields: Any) -> dict[str, Any]:
    service = {"type": "service", "name": "Synthetic Checks", "escalation_policy": POLICY}
    return {"service": service | fields}


async def test_create_service_then_list_it(client: httpx2.AsyncClient, acme_token: str) -> None:
    response = await client.post(
        "/us/api/services", json=_service_body(), headers=bearer(acme_token)
    )

    assert response.status_code == 201
    service = response.json()["service"]
    assert service["name"] == "Synthetic Checks"
    assert service["type"] == "service"
    assert service["escalation_policy"]["id"] == "PEPAC02"
    assert service["integrations"] == []
    listed = await client.get(
        "/us/api/services", params={"query": "synthetic"}, headers=bearer(acme_token)
    )
    assert [s["id"] for s in listed.json()["services"]] == [service["id"]]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Checkout API"}, "Name has already been taken"),
        ({"name": "checkout api"}, "Name has already been taken"),
        ({"name": ""}, "Name can't be blank"),
        ({"name": None}, "Name can't be blank"),
        ({"escalation_policy": {"id": "PNOPE00", "type": "escalation_policy_reference"}},
         "Escalation policy not found"),
        # Globex's policy: other accounts' objects do not exist for this caller.
        ({"escalation_policy": {"id": "PEPGL01", "type": "escalation_policy_reference"}},
         "Escalation policy not found"),
        ({"escalation_policy": None}, "Escalation policy must be an escalation_policy_reference"),
        ({"type": "services"}, "Type must be 'service'."),
    ],
)  # fmt: skip
async def test_invalid_service_is_400_with_errors(
    client: httpx2.AsyncClient, acme_token: str, fields: dict[str, Any], message: str
) -> None:
    response = await client.post(
        "/us/api/services", json=_service_body(**fields), headers=bearer(acme_token)
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["message"], error["code"]) == ("Invalid Input Provided", 2001)
    assert message in error["errors"]


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"name": "x"}'])
async def test_malformed_body_is_400(
    client: httpx2.AsyncClient, acme_token: str, raw: bytes
) -> None:
    headers = bearer(acme_token) | {"Content-Type": "application/json"}

    response = await client.post("/us/api/services", content=raw, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2001


async def test_integration_create_read_delete(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    service = (
        await client.post("/us/api/services", json=_service_body(), headers=bearer(acme_token))
    ).json()["service"]
    body = {
        "integration": {
            "type": "events_api_v2_inbound_integration",
            "name": "pdconnect",
            "service": {"id": service["id"], "type": "service_reference"},
        }
    }

    created = await client.post(
        f"/us/api/services/{service['id']}/integrations", json=body, headers=bearer(acme_token)
    )

    assert created.status_code == 201
    integration = created.json()["integration"]
    assert integration["type"] == "events_api_v2_inbound_integration"
    assert integration["name"] == "pdconnect"
    assert len(integration["integration_key"]) == 32
    assert integration["integration_key"].isalnum()
    assert integration["integration_key"] == integration["integration_key"].lower()
    assert integration["service"]["id"] == service["id"]
    assert integration["created_at"].endswith("Z")
    path = f"/us/api/services/{service['id']}/integrations/{integration['id']}"
    assert integration["self"].endswith(path)

    read = await client.get(path, headers=bearer(acme_token))
    assert read.status_code == 200
    assert read.json()["integration"]["integration_key"] == integration["integration_key"]

    view = (await client.get("/_sandbox/accounts/acme-corp")).json()
    recorded = next(s for s in view["services"] if s["id"] == service["id"])["integrations"]
    assert recorded == [
        {
            "id": integration["id"],
            "name": "pdconnect",
            "type": "events_api_v2_inbound_integration",
            "integration_key": integration["integration_key"],
            "created_by": CLIENT_ID,
        }
    ]
    assert state.find_routing_key(integration["integration_key"]) is not None

    deleted = await client.delete(path, headers=bearer(acme_token))
    assert deleted.status_code == 204
    assert (await client.get(path, headers=bearer(acme_token))).status_code == 404
    assert (await client.delete(path, headers=bearer(acme_token))).status_code == 404
    assert state.find_routing_key(integration["integration_key"]) is None


async def test_integration_under_the_wrong_service_is_404(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    acme = state.account_by_subdomain("acme-corp")
    assert acme is not None
    first, second = state.services_in(acme.id)[:2]
    created = await client.post(
        f"/us/api/services/{first.id}/integrations",
        json={"integration": {"type": "events_api_v2_inbound_integration"}},
        headers=bearer(acme_token),
    )
    iid = created.json()["integration"]["id"]

    response = await client.get(
        f"/us/api/services/{second.id}/integrations/{iid}", headers=bearer(acme_token)
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    "integration",
    [
        {"type": "aws_cloudwatch_inbound_integration"},
        {},
        {"type": "events_api_v2_inbound_integration", "service": {"id": "PWRONG1"}},
    ],
)
async def test_invalid_integration_is_400(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str, integration: dict[str, Any]
) -> None:
    acme = state.account_by_subdomain("acme-corp")
    assert acme is not None
    service = state.services_in(acme.id)[0]

    response = await client.post(
        f"/us/api/services/{service.id}/integrations",
        json={"integration": integration},
        headers=bearer(acme_token),
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2001


async def test_deleting_a_service_in_the_web_app_makes_it_404(
    client: httpx2.AsyncClient, state: SandboxState, acme_token: str
) -> None:
    acme = state.account_by_subdomain("acme-corp")
    assert acme is not None
    service = state.services_in(acme.id)[0]

    gone = await client.delete(f"/_sandbox/accounts/acme-corp/services/{service.id}")

    assert gone.status_code == 204
    read = await client.get(f"/us/api/services/{service.id}", headers=bearer(acme_token))
    assert read.status_code == 404
