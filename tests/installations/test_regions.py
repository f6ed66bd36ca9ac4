"""The service region of a pasted key and of a Simple Install: chosen by the admin, stored on
the installation with that region's events URL, and never taken from a callback URL alone."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx2
import pytest
from databases import Database

from app.deps import Deps, new_http_client
from app.installations import store
from tests.conftest import FakeClock, admin_headers, make_settings
from tests.installations.conftest import (
    GLOBEX_USER,
    Sandbox,
    count,
    flashes,
    follow_callback,
    query_of,
    signed_in,
)
from tests.installations.test_manual_and_isolation import csrf_of
from tests.installations.test_simple_install import KEY_A, config_of, deliver

US_KEY = "0123456789abcdef0123456789abcdef"
EU_KEY = "e" * 32
OTHER_US_KEY = "1" * 32


async def installations(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch_all(
        # One test is one transaction, so created_at ties: order by something that does not.
        "SELECT method, account_key, region, events_url FROM installations ORDER BY account_key"
    )
    return [dict(r._mapping) for r in rows]


async def add_key(http: httpx2.AsyncClient, tenant: dict[str, Any], **body: Any) -> httpx2.Response:
    return await http.post(
        f"/admin/v1/tenants/{tenant['id']}/services", json=body, headers=admin_headers()
    )


# Pasted keys, admin API


async def test_an_eu_key_is_stored_with_the_eu_events_url(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant = await signed_in(deps)
    added = await add_key(http, tenant, name="Billing", routing_key=EU_KEY, region="eu")
    assert added.status_code == 201, added.text
    assert added.json()["region"] == "eu"
    assert EU_KEY not in added.text
    assert await installations(db) == [
        {
            "method": "manual",
            "account_key": "manual:eu",
            "region": "eu",
            "events_url": f"{sandbox.url}/eu/events",
        }
    ]
    listed = await http.get(f"/admin/v1/tenants/{tenant['id']}/services", headers=admin_headers())
    assert [(s["name"], s["region"]) for s in listed.json()["services"]] == [("Billing", "eu")]


async def test_a_key_without_region_is_us_by_default(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant = await signed_in(deps)
    added = await add_key(http, tenant, name="Checkout", routing_key=US_KEY)
    assert added.status_code == 201, added.text
    assert added.json()["region"] == "us"
    [installation] = await installations(db)
    assert (installation["region"], installation["events_url"]) == (
        "us",
        f"{sandbox.url}/us/events",
    )


@pytest.fixture
async def eu_deployment(db: Database, clock: FakeClock, sandbox: Sandbox) -> AsyncIterator[Deps]:
    """A deployment whose PAGERDUTY_REGION is eu: what an unnamed region falls back to."""
    settings = make_settings(
        PAGERDUTY_REGION="eu",
        PAGERDUTY_APP_ID="PTESTAP",
        PAGERDUTY_EVENTS_URL=f"{sandbox.url}/{{region}}/events",
        PAGERDUTY_APP_URL=f"{sandbox.url}/app",
    )
    http = new_http_client()
    try:
        yield Deps(config=settings, db=db, http=http, clock=clock)
    finally:
        await http.aclose()


async def test_an_unnamed_region_is_the_deployments(eu_deployment: Deps, db: Database) -> None:
    http, tenant = await signed_in(eu_deployment)
    added = await add_key(http, tenant, name="Checkout", routing_key=US_KEY)
    assert added.json()["region"] == "eu"
    named = await add_key(http, tenant, name="Other", routing_key=OTHER_US_KEY, region="us")
    assert named.json()["region"] == "us"
    # The settings form offers the deployment's region first.
    page = await flashes(http)
    assert '<option value="eu" selected>' in page
    assert '<option value="us" selected>' not in page


@pytest.mark.parametrize("region", ["mars", "EU", "", 5, ["eu"], {"name": "eu"}])
async def test_a_bad_region_is_refused_naming_it(deps: Deps, db: Database, region: object) -> None:
    http, tenant = await signed_in(deps)
    response = await add_key(http, tenant, name="x", routing_key=US_KEY, region=region)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "region"
    assert "us or eu" in error["message"]
    assert await count(db, "pd_services") == 0
    assert await count(db, "installations") == 0


async def test_us_and_eu_keys_of_one_tenant_get_one_installation_per_region(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant = await signed_in(deps)
    us = (await add_key(http, tenant, name="US", routing_key=US_KEY, region="us")).json()
    eu = (await add_key(http, tenant, name="EU", routing_key=EU_KEY, region="eu")).json()
    more = (await add_key(http, tenant, name="US 2", routing_key=OTHER_US_KEY)).json()

    assert us["installation_id"] == more["installation_id"] != eu["installation_id"]
    assert [(i["region"], i["events_url"]) for i in await installations(db)] == [
        ("eu", f"{sandbox.url}/eu/events"),
        ("us", f"{sandbox.url}/us/events"),
    ]
    listed = await http.get(
        f"/admin/v1/tenants/{tenant['id']}/installations", headers=admin_headers()
    )
    assert sorted(i["region"] for i in listed.json()["installations"]) == ["eu", "us"]


async def test_keys_pasted_before_regions_keep_their_installation(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    """Before regions could be named, a tenant's pasted keys shared one installation keyed
    "manual" in the deployment's region: keys of that region still join it."""
    http, tenant = await signed_in(deps)
    legacy = await store.upsert_keyed_installation(
        db,
        tenant_id=UUID(tenant["id"]),
        method="manual",
        account_key="manual",
        subdomain=None,
        account_name=None,
        region="us",
        events_url=f"{sandbox.url}/us/events",
    )
    us = (await add_key(http, tenant, name="US", routing_key=US_KEY, region="us")).json()
    eu = (await add_key(http, tenant, name="EU", routing_key=EU_KEY, region="eu")).json()
    assert us["installation_id"] == str(legacy.id)
    assert eu["installation_id"] != str(legacy.id)
    assert [i["account_key"] for i in await installations(db)] == ["manual", "manual:eu"]


# Pasted keys, settings form


async def test_the_settings_form_takes_a_region(deps: Deps, sandbox: Sandbox, db: Database) -> None:
    http, _ = await signed_in(deps)
    page = await flashes(http)
    assert 'id="manual-region"' in page
    assert '<option value="us" selected>' in page
    csrf = csrf_of(page)
    for name, key, region in (("EU pager", EU_KEY, "eu"), ("US pager", US_KEY, None)):
        form = {"csrf_token": csrf, "name": name, "routing_key": key, "api": "v2"}
        if region is not None:
            form["region"] = region
        response = await http.post("/settings/services/manual", data=form)
        assert response.status_code == 303
        assert f"Added {name}." in await flashes(http)
    assert [(i["region"], i["events_url"]) for i in await installations(db)] == [
        ("eu", f"{sandbox.url}/eu/events"),
        ("us", f"{sandbox.url}/us/events"),
    ]
    page = await flashes(http)
    assert page.count("Keys added by hand") == 2
    assert '<span class="pill region">EU</span>' in page


async def test_the_settings_form_refuses_a_bad_region(deps: Deps, db: Database) -> None:
    http, _ = await signed_in(deps)
    csrf = csrf_of(await flashes(http))
    response = await http.post(
        "/settings/services/manual",
        data={"csrf_token": csrf, "name": "x", "routing_key": US_KEY, "region": "apac"},
    )
    # Shown again, the problem beside the region's field.
    assert response.status_code == 422
    assert (
        'id="manual-region-error" role="alert">'
        "Choose the region where you sign in to PagerDuty: US or EU.<" in response.text
    )
    assert await count(db, "pd_services") == 0


# Simple Install


async def choose_region(http: httpx2.AsyncClient, region: str) -> httpx2.Response:
    """Press the Simple Install button of a region."""
    return await http.get("/settings/connect/install", params={"region": region})


async def start_in(http: httpx2.AsyncClient, sandbox: Sandbox, region: str) -> tuple[str, str]:
    """Pick the region and press Simple Install: the install URL, and our state."""
    response = await choose_region(http, region)
    assert response.status_code == 302, response.text
    url = response.headers["location"]
    # No EU install page is documented: both regions go to the US one (pagerduty.md §1).
    assert url.startswith(f"{sandbox.url}/app/install/integration?")
    return url, query_of(query_of(url)["redirect_url"])["state"]


async def test_simple_install_in_the_eu_stores_eu(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _ = await signed_in(deps)
    page = await flashes(http)
    assert 'href="/settings/connect/install?region=eu"' in page
    url, state = await start_in(http, sandbox, "eu")
    assert state.startswith("eu.")
    globex = await sandbox.account("globex-eu")
    form = query_of(url) | {"user": GLOBEX_USER, "action": "install"}
    answer = await sandbox.http.post(
        url.split("?")[0], data={**form, "service": globex["services"][0]["id"]}
    )
    assert answer.status_code == 302, answer.text
    await follow_callback(http, answer.headers["location"])

    page = await flashes(http)
    assert "from PagerDuty account globex-eu. Its events go to PagerDuty&#39;s EU region." in page
    assert await installations(db) == [
        {
            "method": "simple_install",
            "account_key": "globex-eu",
            "region": "eu",
            "events_url": f"{sandbox.url}/eu/events",
        }
    ]


async def test_simple_install_defaults_to_us(deps: Deps, sandbox: Sandbox, db: Database) -> None:
    http, _ = await signed_in(deps)
    _, state = await start_in(http, sandbox, "us")
    await deliver(http, state, config_of(_key()))
    [installation] = await installations(db)
    assert installation["region"] == "us"
    # The plain link (no region asked) is the deployment's region too.
    response = await http.get("/pagerduty/connect?method=install")
    assert query_of(query_of(response.headers["location"])["redirect_url"])["state"][:3] == "us."


def _key() -> dict[str, str]:
    return {"integration_key": KEY_A, "name": "Checkout", "id": "PD12345", "type": "service"}


async def test_the_region_cannot_be_changed_on_the_way_back(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    """PagerDuty passes back whatever the browser brings: a region slipped into the callback
    URL, or into its state, is not the one the admin chose here."""
    http, _ = await signed_in(deps)
    _, state = await start_in(http, sandbox, "us")
    forged = "eu." + state.removeprefix("us.")
    await deliver(http, forged, config_of(_key()))
    assert "state did not match" in await flashes(http)
    assert await count(db, "installations") == 0

    _, state = await start_in(http, sandbox, "us")
    response = await http.get(
        "/pagerduty/callback",
        params={"state": state, "region": "eu", "config": config_of(_key())},
    )
    assert response.status_code == 303
    assert [i["region"] for i in await installations(db)] == ["us"]


@pytest.mark.parametrize("region", ["", "apac", "US"])
async def test_simple_install_refuses_a_bad_region(deps: Deps, db: Database, region: str) -> None:
    http, _ = await signed_in(deps)
    response = await choose_region(http, region)
    assert response.status_code == 303
    assert response.headers["location"] == "/settings"
    message = re.search(r'class="flash flash-error"[^>]*>([^<]*)<', await flashes(http))
    assert message is not None
    assert "Simple Install was not started: region must be us or eu" in message.group(1)


async def test_simple_install_start_needs_a_session(deps: Deps, db: Database) -> None:
    http, _ = await signed_in(deps)
    http.cookies.clear()
    response = await choose_region(http, "eu")
    assert response.status_code == 401
    assert "location" not in response.headers
    assert "Please sign in" in response.text


async def test_installing_again_in_the_other_region_is_refused(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _ = await signed_in(deps)
    _, state = await start_in(http, sandbox, "us")
    await deliver(http, state, config_of(_key()))
    _, state = await start_in(http, sandbox, "eu")
    await deliver(http, state, config_of({**_key(), "name": "Renamed"}))

    page = await flashes(http)
    assert "already connected as an account of the US region, not EU" in page
    assert "disconnect it first" in page
    assert [i["region"] for i in await installations(db)] == ["us"]
    names = await db.fetch_all("SELECT name FROM pd_services")
    assert [r._mapping["name"] for r in names] == ["Checkout"]
