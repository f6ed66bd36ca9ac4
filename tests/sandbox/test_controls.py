"""The `/_sandbox` controls and the environment configuration."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from pdsandbox import SandboxState, config_from_env
from pdsandbox.config import SandboxConfig
from pdsandbox.server import SandboxConfigError
from tests.sandbox.flow import FakeClock, connect


async def test_control_reports_and_changes_settings(client: httpx2.AsyncClient) -> None:
    before = (await client.get("/_sandbox/control")).json()

    changed = await client.post(
        "/_sandbox/control", json={"install_name_spelling": "name", "rest_rate_limit": 10}
    )

    defaults = {
        "id_token_key": "normal",
        "revoke_endpoint": "absent",
        "install_name_spelling": "Name",
        "rest_rate_limit": 960,
        "unknown_key_response": "reject",
        "default_rate_limit": 120,
        "rate_limits": {},
    }
    assert before == defaults
    assert changed.json() == defaults | {"install_name_spelling": "name", "rest_rate_limit": 10}


@pytest.mark.parametrize(
    "bad",
    [
        {"id_token_key": "evil"},
        {"revoke_endpoint": "yes"},
        {"install_name_spelling": "NAME"},
        {"rest_rate_limit": 0},
        {"rest_rate_limit": True},
        {"latency": 5},
    ],
)
async def test_bad_controls_are_refused_and_change_nothing(
    client: httpx2.AsyncClient, bad: dict[str, Any]
) -> None:
    # A valid change rides along: a refused request must not apply half of itself.
    response = await client.post("/_sandbox/control", json={"rest_rate_limit": 5} | bad)

    assert response.status_code == 400
    assert (await client.get("/_sandbox/control")).json()["rest_rate_limit"] == 960


async def test_control_body_must_be_an_object(client: httpx2.AsyncClient) -> None:
    response = await client.post("/_sandbox/control", json=["id_token_key"])

    assert response.status_code == 400


async def test_clock_advance_moves_the_sandbox_clock(
    client: httpx2.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    response = await client.post("/_sandbox/clock/advance", json={"seconds": 90})
    refused = await client.post("/_sandbox/clock/advance", json={"seconds": -1})

    assert response.json() == {"now": clock.now + 90, "offset": 90}
    assert state.now() == clock.now + 90
    assert refused.status_code == 400


async def test_account_view_lists_everything_a_test_checks(client: httpx2.AsyncClient) -> None:
    await connect(client)

    view = (await client.get("/_sandbox/accounts/acme-corp")).json()

    assert (view["id"], view["name"], view["region"]) == ("PACME00", "Acme Corp", "us")
    assert {u["email"] for u in view["users"]} == {"ada@acme.example", "bob@acme.example"}
    assert len(view["services"]) == 160
    assert len(view["escalation_policies"]) == 3
    assert {r["type"] for r in view["rulesets"]} == {"global_rule_set", "team_rule_set"}
    assert view["tokens"] == {"grants": 1, "revoked_grants": 0, "live_access_tokens": 1}
    assert view["grants"][0]["scope"] == "openid write"


async def test_account_list_and_unknown_account(client: httpx2.AsyncClient) -> None:
    accounts = (await client.get("/_sandbox/accounts")).json()["accounts"]
    missing = await client.get("/_sandbox/accounts/nope")

    assert [(a["subdomain"], a["region"]) for a in accounts] == [
        ("acme-corp", "us"), ("globex-eu", "eu"), ("initech", "us"),
    ]  # fmt: skip
    assert accounts[1]["api_url"] == "http://127.0.0.1:8900/eu/api"
    assert missing.status_code == 404


def test_config_from_env_defaults() -> None:
    config = config_from_env({}, port=8911)

    assert config.base_url == "http://127.0.0.1:8911"
    (app,) = config.apps
    assert app.client_id == "sandbox-client-id"
    assert app.app_id == "PSANDBX"
    assert "http://127.0.0.1:8000/pagerduty/callback" in app.redirect_uris


def test_config_from_env_reads_every_variable() -> None:
    config = config_from_env(
        {
            "SANDBOX_BASE_URL": "http://pd.local:9000/",
            "SANDBOX_CLIENT_ID": "cid",
            "SANDBOX_CLIENT_SECRET": "sec",
            "SANDBOX_REDIRECT_URIS": "http://a.example/cb, http://b.example/cb",
            "SANDBOX_APP_ID": "",
        }
    )

    assert config == SandboxConfig(
        base_url="http://pd.local:9000",
        apps=config.apps,
    )
    (app,) = config.apps
    assert (app.client_id, app.client_secret, app.app_id) == ("cid", "sec", None)
    assert app.redirect_uris == ("http://a.example/cb", "http://b.example/cb")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SANDBOX_BASE_URL": "pd.local:9000"}, "SANDBOX_BASE_URL"),
        ({"SANDBOX_REDIRECT_URIS": "not-a-url"}, "SANDBOX_REDIRECT_URIS"),
        ({"SANDBOX_REDIRECT_URIS": ""}, "SANDBOX_REDIRECT_URIS"),
    ],
)
def test_config_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SandboxConfigError, match=variable):
        config_from_env(env)
