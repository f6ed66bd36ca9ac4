"""Rules saved when regexes were Python's `re`, with patterns RE2 refuses: ingest goes on (they
match nothing), the rules API and the settings page say so, and the rules around them can still
be edited, removing them included; a new pattern RE2 refuses is still refused."""

from __future__ import annotations

import html
import re
from typing import Any
from uuid import UUID

import httpx2
from databases import Database

from app.ingest import store
from tests.conftest import admin_headers

LOOKAHEAD = "^(?=db)db\\d"
BACKREFERENCE = "(\\w)\\1"


async def tenant_with_services(client: httpx2.AsyncClient) -> tuple[UUID, str, list[str]]:
    created = await client.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    tenant = created.json()
    services = []
    for name, key in (("Databases", "a" * 32), ("Everything", "b" * 32)):
        added = await client.post(
            f"/admin/v1/tenants/{tenant['id']}/services",
            json={"name": name, "routing_key": key, "api": "v2"},
            headers=admin_headers(),
        )
        assert added.status_code == 201, added.text
        services.append(added.json()["id"])
    return UUID(tenant["id"]), tenant["ingest_key"], services


async def with_stale_rules(db: Database, client: httpx2.AsyncClient) -> tuple[UUID, str, list[str]]:
    tenant_id, key, (databases, everything) = await tenant_with_services(client)
    await store.replace_rules(
        db,
        tenant_id,
        [
            ("db hosts", [regex("labels.host", LOOKAHEAD)], (UUID(databases),)),
            ("doubled", [regex("summary", BACKREFERENCE)], (UUID(databases),)),
            ("everything else", [], (UUID(everything),)),
        ],
    )
    return tenant_id, key, [databases, everything]


def regex(field: str, pattern: str) -> dict[str, Any]:
    return {"field": field, "op": "regex", "value": pattern}


async def test_ingest_goes_on_and_the_stale_conditions_match_nothing(
    db: Database, client: httpx2.AsyncClient
) -> None:
    _, key, (_, everything) = await with_stale_rules(db, client)
    sent = await client.post(
        "/v1/alerts",
        json={"summary": "aa", "labels": {"host": "db1"}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["events"][0]["service"] == everything


async def test_the_rules_api_lists_each_stale_condition_as_a_problem(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, _, _ = await with_stale_rules(db, client)
    listed = await client.get(f"/admin/v1/tenants/{tenant_id}/routes", headers=admin_headers())
    problems = [rule["problems"] for rule in listed.json()["routes"]]
    assert problems == [
        [
            {
                "field": "conditions[0].value",
                "message": "lookahead (?=…) is not supported: rules use RE2 syntax; until it is "
                "changed, this condition matches nothing",
            }
        ],
        [
            {
                "field": "conditions[0].value",
                "message": "backreference \\1 is not supported: rules use RE2 syntax; until it "
                "is changed, this condition matches nothing",
            }
        ],
        [],
    ]


async def test_stale_patterns_can_be_saved_again_but_not_added(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, _, (databases, _) = await with_stale_rules(db, client)
    path = f"/admin/v1/tenants/{tenant_id}/routes"
    listed = (await client.get(path, headers=admin_headers())).json()["routes"]
    kept = [
        {k: rule[k] for k in ("name", "conditions", "service_ids")} for rule in reversed(listed)
    ]
    resaved = await client.put(path, json={"routes": kept}, headers=admin_headers())
    assert resaved.status_code == 200, resaved.text
    assert [r["name"] for r in resaved.json()["routes"]] == [
        "everything else",
        "doubled",
        "db hosts",
    ]
    added = {
        "name": "new",
        "conditions": [regex("summary", "(?<=disk )full")],
        "service_ids": [databases],
    }
    refused = await client.put(path, json={"routes": [*kept, added]}, headers=admin_headers())
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == {
        "field": "routes[3].conditions[0].value",
        "message": "routes[3].conditions[0].value: lookbehind (?<=…) is not supported: rules "
        "use RE2 syntax",
    }
    # Another tenant's stale pattern is no licence.
    stranger, _, (other, _) = await tenant_with_services(client)
    borrowed = {
        "name": "borrowed",
        "conditions": [regex("summary", LOOKAHEAD)],
        "service_ids": [other],
    }
    refused = await client.put(
        f"/admin/v1/tenants/{stranger}/routes", json={"routes": [borrowed]}, headers=admin_headers()
    )
    assert refused.status_code == 422, refused.text
    assert "lookahead (?=…) is not supported" in refused.json()["error"]["message"]


async def sign_in(client: httpx2.AsyncClient, tenant_id: UUID) -> str:
    link = await client.post(f"/admin/v1/tenants/{tenant_id}/login-links", headers=admin_headers())
    await client.get(link.json()["url"])
    page = await client.get("/settings")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def flashed(page: str) -> list[str]:
    return re.findall(
        r"The rules were not saved: [^<]*|Rule '[^']*' (?:added|removed)\.", html.unescape(page)
    )


async def test_the_settings_form_removes_one_stale_rule_while_another_stays(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, _, (databases, _) = await with_stale_rules(db, client)
    csrf = await sign_in(client, tenant_id)
    page = (await client.get("/settings/routing")).text
    shown = [html.unescape(p) for p in re.findall(r'class="[^"]*rule-problem">([^<]+)<', page)]
    assert shown == [
        "lookahead (?=…) is not supported: rules use RE2 syntax; until it is changed, this "
        "condition matches nothing",
        "backreference \\1 is not supported: rules use RE2 syntax; until it is changed, this "
        "condition matches nothing",
    ]
    first = re.findall(r'action="/settings/routes/([0-9a-f-]+)/delete"', page)[0]
    removed = await client.post(f"/settings/routes/{first}/delete", data={"csrf_token": csrf})
    assert removed.status_code == 303
    page = (await client.get("/settings/routing")).text
    assert flashed(page) == ["Rule 'db hosts' removed."]
    assert re.findall(r'class="rule-name">([^<]+)<', page) == ["doubled", "everything else"]

    form = {
        "csrf_token": csrf,
        "name": "disk",
        "field": "summary",
        "op": "regex",
        "value": "disk(?= full)",
        "service_ids": databases,
    }
    refused = await client.post("/settings/routes", data=form)
    assert refused.status_code == 422
    said = re.search(r'id="rule-value-error" role="alert">([^<]*)<', refused.text)
    assert said is not None
    assert html.unescape(said.group(1)) == (
        "That regular expression cannot be used: lookahead (?=…) is not supported: "
        "rules use RE2 syntax."
    )
    added = await client.post("/settings/routes", data={**form, "value": "disk full"})
    assert added.status_code == 303
    assert flashed((await client.get("/settings/routing")).text) == ["Rule 'disk' added."]
