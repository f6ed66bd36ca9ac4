"""Manual keys (settings form and admin API), and tenant isolation."""

from __future__ import annotations

import re
from typing import Any

import pytest
from databases import Database

from app.deps import Deps
from tests.conftest import admin_headers
from tests.installations.conftest import (
    ACME_USER,
    Sandbox,
    consent,
    count,
    flashes,
    follow_callback,
    signed_in,
    start_oauth,
)

V2_KEY = "0123456789abcdef0123456789abcdef"
V1_KEY = "fedcba9876543210fedcba9876543210"


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


async def test_manual_key_from_the_settings_form(deps: Deps, db: Database) -> None:
    http, _ = await signed_in(deps)
    csrf = csrf_of(await flashes(http))
    response = await http.post(
        "/settings/services/manual",
        data={"csrf_token": csrf, "name": "Legacy pager", "routing_key": V1_KEY, "api": "v1"},
    )
    assert response.status_code == 303
    page = await flashes(http)
    assert "Added Legacy pager." in page
    assert "Keys added by hand" in page
    assert V1_KEY not in page
    row = await db.fetch_one("SELECT kind, api_version, name FROM pd_services")
    assert row is not None
    assert dict(row._mapping) == {"kind": "manual", "api_version": "v1", "name": "Legacy pager"}


async def test_manual_key_form_needs_csrf(deps: Deps, db: Database) -> None:
    http, _ = await signed_in(deps)
    response = await http.post(
        "/settings/services/manual", data={"name": "x", "routing_key": V2_KEY, "api": "v2"}
    )
    assert response.status_code == 403
    assert await count(db, "pd_services") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"routing_key": V2_KEY}, "name"),
        ({"name": "x"}, "routing_key"),
        ({"name": "x", "routing_key": "too-short"}, "routing_key"),
        ({"name": "x", "routing_key": V2_KEY + "0"}, "routing_key"),
        ({"name": "x", "routing_key": V2_KEY, "api": "v3"}, "api"),
        ({"name": "x" * 256, "routing_key": V2_KEY}, "name"),
        ({"name": 5, "routing_key": V2_KEY}, "name"),
    ],
)
async def test_admin_manual_key_errors_name_the_field(
    deps: Deps, db: Database, body: dict[str, Any], field: str
) -> None:
    http, tenant = await signed_in(deps)
    response = await http.post(
        f"/admin/v1/tenants/{tenant['id']}/services", json=body, headers=admin_headers()
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert V2_KEY not in response.text
    assert await count(db, "pd_services") == 0


async def test_admin_manual_key_is_never_echoed_and_not_added_twice(deps: Deps) -> None:
    http, tenant = await signed_in(deps)
    path = f"/admin/v1/tenants/{tenant['id']}/services"
    created = await http.post(
        path, json={"name": "Pager", "routing_key": V2_KEY}, headers=admin_headers()
    )
    assert created.status_code == 201
    assert created.json()["api"] == "v2"
    assert created.json()["health"] == "healthy"
    assert V2_KEY not in created.text
    again = await http.post(
        path, json={"name": "Again", "routing_key": V2_KEY}, headers=admin_headers()
    )
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "routing_key"
    listed = await http.get(path, headers=admin_headers())
    assert [s["name"] for s in listed.json()["services"]] == ["Pager"]
    assert V2_KEY not in listed.text


async def test_tenant_b_cannot_see_or_change_tenant_a(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    a_http, a = await signed_in(deps, "Tenant A")
    picker = (
        await follow_callback(
            a_http, await consent(sandbox, await start_oauth(a_http), user=ACME_USER)
        )
    ).headers["location"]
    await a_http.post(
        f"/admin/v1/tenants/{a['id']}/services",
        json={"name": "A pager", "routing_key": V2_KEY},
        headers=admin_headers(),
    )

    b_http, b = await signed_in(deps, "Tenant B")
    # B's session: A's installation does not exist for B.
    assert (await b_http.get(picker)).status_code == 404
    refused = await b_http.post(
        picker, data={"csrf_token": csrf_of(await flashes(b_http)), "service": ["PABC123"]}
    )
    assert refused.status_code == 404
    b_page = await flashes(b_http)
    assert "acme-corp" not in b_page
    assert "A pager" not in b_page
    # B's admin paths: nothing of A's.
    listed = await b_http.get(f"/admin/v1/tenants/{b['id']}/services", headers=admin_headers())
    assert listed.json()["services"] == []
    # The same key may be pasted by B: keys are unique per tenant, and B learns nothing of A.
    mine = await b_http.post(
        f"/admin/v1/tenants/{b['id']}/services",
        json={"name": "B pager", "routing_key": V2_KEY},
        headers=admin_headers(),
    )
    assert mine.status_code == 201
    # A is unchanged.
    a_page = await flashes(a_http)
    assert "acme-corp" in a_page
    assert "A pager" in a_page
    assert "B pager" not in a_page
    assert await count(db, "installations") == 3


async def test_picker_of_unknown_installation_is_404(deps: Deps) -> None:
    http, _ = await signed_in(deps)
    for path in (
        "/settings/installations/00000000-0000-0000-0000-000000000000/services",
        "/settings/installations/nope/services",
    ):
        response = await http.get(path)
        assert response.status_code == 404
        assert "installation not found" in response.text


async def test_removing_a_service_takes_it_out_of_routing_rules(deps: Deps) -> None:
    http, tenant = await signed_in(deps)
    base = f"/admin/v1/tenants/{tenant['id']}"
    one = (
        await http.post(
            f"{base}/services", json={"name": "One", "routing_key": V2_KEY}, headers=admin_headers()
        )
    ).json()["id"]
    two = (
        await http.post(
            f"{base}/services", json={"name": "Two", "routing_key": V1_KEY}, headers=admin_headers()
        )
    ).json()["id"]
    rules = {
        "routes": [
            {
                "name": "both",
                "conditions": [{"field": "labels.team", "op": "exists"}],
                "service_ids": [one, two],
            },
            {"name": "only one", "conditions": [], "service_ids": [one]},
        ]
    }
    assert (
        await http.put(f"{base}/routes", json=rules, headers=admin_headers())
    ).status_code == 200
    removed = await http.delete(f"{base}/services/{one}", headers=admin_headers())
    assert removed.status_code == 200
    left = (await http.get(f"{base}/routes", headers=admin_headers())).json()["routes"]
    assert [(r["name"], r["service_ids"]) for r in left] == [("both", [two])]
