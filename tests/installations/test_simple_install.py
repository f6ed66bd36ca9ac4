"""Connect by Simple Install Flow: through the sandbox, and with hand-made `config` values,
which are untrusted input that travelled through the browser."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import pytest
from databases import Database

from app.deps import Deps
from tests.installations.conftest import (
    ACME_USER,
    Sandbox,
    count,
    flashes,
    follow_callback,
    query_of,
    signed_in,
)

KEY_A = "a" * 31 + "1"
KEY_B = "R" + "b" * 31
KEY_C = "c" * 32


async def start_install(http: httpx2.AsyncClient, sandbox: Sandbox) -> tuple[str, str]:
    """Click the Simple Install button: the install URL, and our state inside redirect_url."""
    response = await http.get("/pagerduty/connect?method=install")
    assert response.status_code == 302
    url = response.headers["location"]
    params = query_of(url)
    assert url.startswith(f"{sandbox.url}/app/install/integration?")
    assert params["app_id"] == "PTESTAP"
    assert params["version"] == "2"
    redirect_url = params["redirect_url"]
    assert redirect_url.startswith("http://127.0.0.1:8000/pagerduty/callback?state=")
    return url, query_of(redirect_url)["state"]


async def deliver(http: httpx2.AsyncClient, state: str | None, config: str | None) -> None:
    params = []
    if state is not None:
        params.append(f"state={quote(state)}")
    if config is not None:
        params.append(f"config={quote(config)}")
    response = await http.get("/pagerduty/callback?" + "&".join(params))
    assert response.status_code == 303, response.text


def config_of(*keys: dict[str, Any], subdomain: str = "acme-corp") -> str:
    return json.dumps(
        {"integration_keys": list(keys), "account": {"subdomain": subdomain, "name": "Acme"}}
    )


async def stored(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch_all(
        "SELECT pd_service_id, name, kind, created_by_us FROM pd_services ORDER BY name"
    )
    return [dict(r._mapping) for r in rows]


async def test_install_through_the_sandbox_stores_service_and_ruleset_keys(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _ = await signed_in(deps)
    url, _ = await start_install(http, sandbox)
    page = await sandbox.http.get(f"{url}&user={ACME_USER}")
    assert page.status_code == 200, page.text
    services = re.findall(r'name=service value="([A-Z0-9]+)"', page.text)
    rulesets = re.findall(r'name=ruleset value="([A-Z0-9]+)"', page.text)
    assert len(services) == 160
    assert len(rulesets) == 2
    form = query_of(url) | {"user": ACME_USER, "action": "install"}
    answer = await sandbox.http.post(
        url.split("?")[0], data={**form, "service": services[:2], "ruleset": rulesets}
    )
    assert answer.status_code == 302
    assert "config=" in answer.headers["location"]
    await follow_callback(http, answer.headers["location"])

    page_text = await flashes(http)
    assert "Connected 4 integration keys from PagerDuty account acme-corp." in page_text
    rows = await stored(db)
    assert sorted(r["kind"] for r in rows) == [
        "global_rule_set",
        "service",
        "service",
        "team_rule_set",
    ]
    assert not any(r["created_by_us"] for r in rows)
    installation = await db.fetch_one(
        "SELECT method, subdomain, region, events_url FROM installations"
    )
    assert installation is not None
    assert dict(installation._mapping) == {
        "method": "simple_install",
        "subdomain": "acme-corp",
        "region": "us",
        "events_url": f"{sandbox.url}/us/events",
    }
    assert "Simple Install" in page_text
    assert "global rule set" in page_text
    assert "team rule set" in page_text


async def test_three_key_types_with_capitalised_name(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _ = await signed_in(deps)
    _, state = await start_install(http, sandbox)
    config = config_of(
        {
            "integration_key": KEY_A,
            "Name": "Super Cool Service",
            "id": "PD12345",
            "type": "service",
        },
        {
            "integration_key": KEY_B,
            "Name": "Global Event Rules",
            "id": "PD6789A",
            "type": "global_rule_set",
        },
        {
            "integration_key": KEY_C,
            "Name": "B Team's Rules",
            "id": "PDBCDEF",
            "type": "team_rule_set",
        },
    )
    await deliver(http, state, config)
    assert "Connected 3 integration keys" in await flashes(http)
    assert await stored(db) == [
        {
            "pd_service_id": "PDBCDEF",
            "name": "B Team's Rules",
            "kind": "team_rule_set",
            "created_by_us": False,
        },
        {
            "pd_service_id": "PD6789A",
            "name": "Global Event Rules",
            "kind": "global_rule_set",
            "created_by_us": False,
        },
        {
            "pd_service_id": "PD12345",
            "name": "Super Cool Service",
            "kind": "service",
            "created_by_us": False,
        },
    ]


async def test_unknown_key_type_is_kept_as_is(deps: Deps, sandbox: Sandbox, db: Database) -> None:
    http, _ = await signed_in(deps)
    _, state = await start_install(http, sandbox)
    await deliver(
        http,
        state,
        config_of(
            {
                "integration_key": KEY_A,
                "name": "Orchestration",
                "id": "PORCH01",
                "type": "event_orchestration",
            }
        ),
    )
    assert [r["kind"] for r in await stored(db)] == ["event_orchestration"]


async def test_installing_again_updates_the_same_rows(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _ = await signed_in(deps)
    for name in ("First name", "Renamed"):
        _, state = await start_install(http, sandbox)
        await deliver(
            http,
            state,
            config_of({"integration_key": KEY_A, "name": name, "id": "PD12345", "type": "service"}),
        )
    assert await count(db, "installations") == 1
    assert [r["name"] for r in await stored(db)] == ["Renamed"]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("{not json", "config"),
        ("[1, 2]", "config"),
        (json.dumps({"account": {"subdomain": "acme"}}), "integration_keys"),
        (
            json.dumps({"integration_keys": [], "account": {"subdomain": "acme"}}),
            "integration_keys",
        ),
        (
            config_of({"name": "x", "id": "P1", "type": "service"}),
            "integration_keys[0].integration_key",
        ),
        (
            config_of({"integration_key": "short", "name": "x", "id": "P1", "type": "service"}),
            "integration_keys[0].integration_key",
        ),
        (
            config_of({"integration_key": KEY_A, "id": "P1", "type": "service"}),
            "integration_keys[0]",
        ),
        (
            config_of({"integration_key": KEY_A, "name": "x", "type": "service"}),
            "integration_keys[0].id",
        ),
        (
            config_of({"integration_key": KEY_A, "name": 7, "id": "P1", "type": "service"}),
            "integration_keys[0]",
        ),
        (
            json.dumps(
                {
                    "integration_keys": [
                        {"integration_key": KEY_A, "name": "x", "id": "P1", "type": "service"}
                    ]
                }
            ),
            "account",
        ),
        (
            json.dumps(
                {
                    "integration_keys": [
                        {"integration_key": KEY_A, "name": "x", "id": "P1", "type": "service"}
                    ],
                    "account": {},
                }
            ),
            "account.subdomain",
        ),
        (
            config_of(
                {
                    "integration_key": KEY_A,
                    "name": "x",
                    "id": "P1",
                    "type": "service",
                    "pad": "y" * 40_000,
                }
            ),
            "config",
        ),
    ],
    ids=[
        "malformed-json",
        "not-an-object",
        "no-keys",
        "empty-keys",
        "key-missing",
        "key-short",
        "name-missing",
        "id-missing",
        "name-not-string",
        "account-missing",
        "subdomain-missing",
        "oversized",
    ],
)
async def test_bad_config_is_refused_with_a_clear_message(
    deps: Deps, sandbox: Sandbox, db: Database, config: str, problem: str
) -> None:
    http, _ = await signed_in(deps)
    _, state = await start_install(http, sandbox)
    await deliver(http, state, config)
    page = await flashes(http)
    message = re.search(r'class="flash flash-error"[^>]*>([^<]*)<', page)
    assert message is not None, "no error shown"
    assert "Nothing was saved" in message.group(1)
    assert problem in message.group(1)
    assert KEY_A not in page
    assert await count(db, "installations") == 0
    assert await count(db, "pd_services") == 0


@pytest.mark.parametrize("state", [None, "", "wrong-state"])
async def test_missing_or_wrong_state_is_refused(
    deps: Deps, sandbox: Sandbox, db: Database, state: str | None
) -> None:
    http, _ = await signed_in(deps)
    await start_install(http, sandbox)
    await deliver(
        http,
        state,
        config_of({"integration_key": KEY_A, "name": "x", "id": "P1", "type": "service"}),
    )
    assert "state did not match" in await flashes(http)
    assert await count(db, "pd_services") == 0


async def test_missing_config_is_refused(deps: Deps, sandbox: Sandbox, db: Database) -> None:
    http, _ = await signed_in(deps)
    _, state = await start_install(http, sandbox)
    await deliver(http, state, None)
    assert "sent no integration keys" in await flashes(http)
    assert await count(db, "installations") == 0


async def test_callback_url_is_ours(deps: Deps, sandbox: Sandbox) -> None:
    http, _ = await signed_in(deps)
    url, _ = await start_install(http, sandbox)
    assert urlsplit(query_of(url)["redirect_url"]).netloc == "127.0.0.1:8000"
