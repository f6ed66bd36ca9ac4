"""The Simple Install page: sign in, tick services and rulesets, come back with config."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from pdsandbox import SandboxState
from tests.sandbox.flow import ACME_USER, APP_ID

PAGE = "/app/install/integration"
CALLBACK = "https://vendor.example/pagerduty/installed?state=s3cr3t&tenant=42"


def _params(**extra: str) -> dict[str, str]:
    return {"app_id": APP_ID, "redirect_url": CALLBACK, "version": "2"} | extra


def _config_of(location: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    query = parse_qs(urlsplit(location).query)
    return json.loads(query["config"][0]), query


def _acme(state: SandboxState) -> str:
    account = state.account_by_subdomain("acme-corp")
    assert account is not None
    return account.id


@pytest.mark.parametrize(
    "params",
    [
        _params(app_id="PUNKNWN"),
        {"app_id": APP_ID, "version": "2"},
        _params(redirect_url="javascript:alert(1)"),
        _params(redirect_url="ftp://vendor.example/x"),
        _params(redirect_uri=CALLBACK) | {"redirect_url": ""},
        _params(version="1"),
    ],
)
async def test_bad_install_links_get_a_400_page(
    client: httpx2.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(PAGE, params=params)

    assert response.status_code == 400
    assert "location" not in response.headers


async def test_sign_in_step_then_every_service_of_the_account(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    first = await client.get(PAGE, params=_params())
    second = await client.get(PAGE, params=_params(user=ACME_USER))

    assert first.status_code == 200
    assert "name=user" in first.text
    assert "bob@acme.example" in first.text
    assert second.status_code == 200
    assert second.text.count("name=service ") == 160
    for ruleset in state.rulesets_in(_acme(state)):
        assert f'id="ruleset-{ruleset.id}"' in second.text
    assert "Hank" not in second.text  # nothing of other accounts


async def test_install_creates_integrations_and_returns_config(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    services = state.services_in(_acme(state))[:2]
    rulesets = state.rulesets_in(_acme(state))
    form: dict[str, str | list[str]] = {
        **_params(user=ACME_USER, action="install"),
        "service": [s.id for s in services],
        "ruleset": [r.id for r in rulesets],
    }

    response = await client.post(PAGE, data=form)

    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("https://vendor.example/pagerduty/installed?")
    config, query = _config_of(location)
    assert query["state"] == ["s3cr3t"]
    assert query["tenant"] == ["42"]
    assert config["account"] == {"subdomain": "acme-corp", "Name": "Acme Corp"}
    keys = config["integration_keys"]
    # PagerDuty's documented spelling, the default: "Name".
    assert [(k["id"], k["Name"], k["type"]) for k in keys] == [
        (services[0].id, services[0].name, "service"),
        (services[1].id, services[1].name, "service"),
        (rulesets[0].id, rulesets[0].name, "global_rule_set"),
        (rulesets[1].id, rulesets[1].name, "team_rule_set"),
    ]
    assert all(len(k["integration_key"]) == 32 for k in keys)
    assert keys[2]["integration_key"].startswith("R")
    for key, service in zip(keys, services, strict=False):
        made = state.integrations_of(service.id)[-1]
        assert made.integration_key == key["integration_key"]
        assert made.type == "events_api_v2_inbound_integration"
        assert made.created_by == APP_ID


async def test_account_name_spelling_is_a_control(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    await client.post("/_sandbox/control", json={"install_name_spelling": "name"})
    service = state.services_in(_acme(state))[0]
    form = _params(user=ACME_USER, action="install", service=service.id)

    response = await client.post(PAGE, data=form)

    config, _ = _config_of(response.headers["location"])
    assert config["account"] == {"subdomain": "acme-corp", "name": "Acme Corp"}
    assert config["integration_keys"][0]["name"] == service.name
    assert "Name" not in config["integration_keys"][0]


async def test_install_can_create_a_new_service(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    form = _params(
        user=ACME_USER,
        action="install",
        new_service_name="Vendor Alerts",
        new_service_policy="PEPAC03",
    )

    response = await client.post(PAGE, data=form)

    config, _ = _config_of(response.headers["location"])
    (key,) = config["integration_keys"]
    created = state.service_named(_acme(state), "Vendor Alerts")
    assert created is not None
    assert created.escalation_policy_id == "PEPAC03"
    assert (key["id"], key["Name"], key["type"]) == (created.id, "Vendor Alerts", "service")


async def test_cancel_shows_a_page_and_creates_nothing(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    before = len(state.integrations)
    service = state.services_in(_acme(state))[0]

    response = await client.post(
        PAGE, data=_params(user=ACME_USER, action="cancel", service=service.id)
    )

    assert response.status_code == 200
    assert "location" not in response.headers
    assert "cancelled" in response.text
    assert len(state.integrations) == before


@pytest.mark.parametrize(
    "extra",
    [
        {},  # nothing ticked
        {"service": "PNOPE00"},
        {"new_service_name": "Checkout API"},  # taken
        {"ruleset": "PNOPE00"},
    ],
)
async def test_install_refusals_rerender_the_page(
    client: httpx2.AsyncClient, state: SandboxState, extra: dict[str, str]
) -> None:
    before = len(state.integrations)

    response = await client.post(PAGE, data=_params(user=ACME_USER, action="install") | extra)

    assert response.status_code == 400
    assert "location" not in response.headers
    assert "id=install-form" in response.text
    assert len(state.integrations) == before


async def test_service_of_another_account_cannot_be_installed(
    client: httpx2.AsyncClient, state: SandboxState
) -> None:
    globex = state.account_by_subdomain("globex-eu")
    assert globex is not None
    foreign = state.services_in(globex.id)[0]

    response = await client.post(
        PAGE, data=_params(user=ACME_USER, action="install", service=foreign.id)
    )

    assert response.status_code == 400
    assert state.integrations_of(foreign.id) == []
