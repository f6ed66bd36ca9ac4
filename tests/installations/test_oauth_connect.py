"""Connect by OAuth against the sandbox, and every way it can go wrong."""

from __future__ import annotations

import re

import httpx2
from databases import Database

from app.deps import Deps
from tests.conftest import FakeClock
from tests.installations.conftest import (
    ACME_USER,
    GLOBEX_USER,
    Sandbox,
    consent,
    count,
    flashes,
    follow_callback,
    query_of,
    signed_in,
    start_oauth,
)

PICKER = re.compile(r"/settings/installations/([0-9a-f-]{36})/services")


async def connect_account(http: httpx2.AsyncClient, sandbox: Sandbox, user: str = ACME_USER) -> str:
    """The whole consent dance; returns the picker's path."""
    location = await consent(sandbox, await start_oauth(http), user=user)
    callback = await follow_callback(http, location)
    assert callback.status_code == 303, callback.text
    assert PICKER.fullmatch(callback.headers["location"]), callback.headers["location"]
    return str(callback.headers["location"])


def service_ids(picker_html: str) -> list[str]:
    return re.findall(r'data-service-id="([A-Z0-9]+)"', picker_html)


async def test_authorize_url_has_state_and_s256_pkce(deps: Deps, sandbox: Sandbox) -> None:
    http, _ = await signed_in(deps)
    url = await start_oauth(http)
    params = query_of(url)
    assert url.startswith(f"{sandbox.url}/identity/oauth/authorize?")
    assert params["client_id"] == "pdconnect-test"
    assert params["redirect_uri"] == "http://127.0.0.1:8000/pagerduty/callback"
    assert params["response_type"] == "code"
    assert params["scope"] == "write"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32
    # A second attempt gets a new state and challenge.
    again = query_of(await start_oauth(http))
    assert again["state"] != params["state"]
    assert again["code_challenge"] != params["code_challenge"]


async def test_connect_pick_create_and_reconnect_never_duplicates(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _ = await signed_in(deps)
    picker_path = await connect_account(http, sandbox)

    picker = await http.get(picker_path)
    assert picker.status_code == 200
    ids = service_ids(picker.text)
    # acme-corp has 160 services: every one is offered, across PagerDuty's pages.
    assert len(ids) == 160
    assert len(set(ids)) == 160
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', picker.text)
    assert csrf is not None

    chosen = ids[:2]
    saved = await http.post(
        picker_path,
        data={
            "csrf_token": csrf.group(1),
            "service": chosen,
            "new_service_name": "Edge Payments Gateway",
            "new_service_policy": "PEPAC02",
        },
    )
    assert saved.status_code == 303
    page = await flashes(http)
    assert "Connected 3 services." in page, re.findall(r'class="flash[^"]*"[^>]*>([^<]*)<', page)
    assert "Edge Payments Gateway" in page
    assert page.count('class="service"') == 3

    account = await sandbox.account("acme-corp")
    ours = [i for s in account["services"] for i in s["integrations"] if i["name"] == "pdconnect"]
    assert len(ours) == 3
    created = [s for s in account["services"] if s["name"] == "Edge Payments Gateway"]
    assert len(created) == 1
    assert created[0]["escalation_policy_id"] == "PEPAC02"

    # Connect the same account again: same installation, same three services.
    again = await connect_account(http, sandbox)
    assert again == picker_path
    picker = await http.get(picker_path)
    assert picker.text.count("(connected)") == 3
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', picker.text)
    assert csrf is not None
    await http.post(picker_path, data={"csrf_token": csrf.group(1)})
    assert await count(db, "installations") == 1
    assert await count(db, "pd_services") == 3
    account = await sandbox.account("acme-corp")
    assert (
        len([i for s in account["services"] for i in s["integrations"] if i["name"] == "pdconnect"])
        == 3
    )
    assert (await flashes(http)).count('class="service"') == 3


async def test_eu_account_uses_eu_hosts(deps: Deps, sandbox: Sandbox, db: Database) -> None:
    http, _ = await signed_in(deps)
    await connect_account(http, sandbox, user=GLOBEX_USER)
    row = await db.fetch_one("SELECT region, api_url, events_url, subdomain FROM installations")
    assert row is not None
    assert dict(row._mapping) == {
        "region": "eu",
        "api_url": f"{sandbox.url}/eu/api",
        "events_url": f"{sandbox.url}/eu/events",
        "subdomain": "globex-eu",
    }
    assert ">EU<" in await flashes(http)


async def assert_nothing_stored(db: Database) -> None:
    assert await count(db, "installations") == 0
    assert await count(db, "pd_services") == 0


async def test_state_mismatch_stores_nothing(deps: Deps, sandbox: Sandbox, db: Database) -> None:
    http, _ = await signed_in(deps)
    location = await consent(sandbox, await start_oauth(http))
    forged = re.sub(r"state=[^&]+", "state=forged", location)
    response = await follow_callback(http, forged)
    assert response.status_code == 303
    assert "state did not match" in await flashes(http)
    await assert_nothing_stored(db)
    # The attempt is spent: the genuine callback afterwards is refused too.
    await follow_callback(http, location)
    assert "state did not match" in await flashes(http)
    await assert_nothing_stored(db)


async def test_code_from_another_browser_fails_pkce(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    """A code injected into another browser's attempt is exchanged with the wrong verifier:
    PagerDuty (the sandbox) refuses it."""
    victim, _ = await signed_in(deps, "Victim")
    attacker, _ = await signed_in(deps, "Attacker")
    attacker_code = query_of(await consent(sandbox, await start_oauth(attacker)))["code"]
    victim_location = await consent(sandbox, await start_oauth(victim))
    injected = re.sub(r"code=[^&]+", f"code={attacker_code}", victim_location)
    await follow_callback(victim, injected)
    page = await flashes(victim)
    assert "PagerDuty refused the connection" in page
    assert "invalid_grant" in page
    await assert_nothing_stored(db)


async def test_code_older_than_30_seconds_is_refused(
    deps: Deps, sandbox: Sandbox, db: Database, clock: FakeClock
) -> None:
    http, _ = await signed_in(deps)
    location = await consent(sandbox, await start_oauth(http))
    clock.advance(seconds=31)
    await follow_callback(http, location)
    page = await flashes(http)
    assert "PagerDuty refused the connection" in page
    assert "invalid_grant" in page
    await assert_nothing_stored(db)


async def test_code_used_twice_is_refused(deps: Deps, sandbox: Sandbox, db: Database) -> None:
    http, _ = await signed_in(deps)
    first = await consent(sandbox, await start_oauth(http))
    await follow_callback(http, first)
    assert await count(db, "installations") == 1
    tokens_before = await db.fetch_val("SELECT access_token_enc FROM installations")

    # A new attempt whose callback carries the already used code.
    second = await consent(sandbox, await start_oauth(http))
    replay = re.sub(r"code=[^&]+", f"code={query_of(first)['code']}", second)
    await follow_callback(http, replay)
    assert "invalid_grant" in await flashes(http)
    assert await count(db, "installations") == 1
    assert await db.fetch_val("SELECT access_token_enc FROM installations") == tokens_before


async def test_denied_consent_shows_a_message_and_stores_nothing(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _ = await signed_in(deps)
    location = await consent(sandbox, await start_oauth(http), decision="deny")
    assert query_of(location)["error"] == "access_denied"
    await follow_callback(http, location)
    assert "PagerDuty access was not approved" in await flashes(http)
    await assert_nothing_stored(db)


async def test_token_granted_only_openid_is_refused_and_revoked(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    await sandbox.control(revoke_endpoint="present")
    http, _ = await signed_in(deps)
    location = await consent(sandbox, await start_oauth(http), grant_scope="openid")
    await follow_callback(http, location)
    page = await flashes(http)
    assert "needs write access" in page
    assert "My Profile" not in page
    await assert_nothing_stored(db)
    grants = (await sandbox.account("acme-corp"))["grants"]
    assert grants, "the sandbox issued a token"
    assert all(g["revoked"] for g in grants)


async def test_a_refused_token_pagerduty_will_not_revoke_is_pointed_out(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    """PagerDuty documents no revoke endpoint (the sandbox's default answers 404): the
    person who just authorized is told where PagerDuty still lists the app."""
    http, _ = await signed_in(deps)
    location = await consent(sandbox, await start_oauth(http), grant_scope="openid")
    await follow_callback(http, location)
    page = await flashes(http)
    assert "needs write access" in page
    assert "remove it in PagerDuty under My Profile &gt; User Settings" in page
    await assert_nothing_stored(db)
    grants = (await sandbox.account("acme-corp"))["grants"]
    assert grants
    assert not any(g["revoked"] for g in grants)


async def test_id_token_signed_by_the_wrong_key_is_refused(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    await sandbox.control(id_token_key="rogue")
    http, _ = await signed_in(deps)
    await follow_callback(http, await consent(sandbox, await start_oauth(http)))
    assert "identity token could not be verified" in await flashes(http)
    await assert_nothing_stored(db)
