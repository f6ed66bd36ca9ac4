"""Who is on call: read from the sandbox's schedules for an OAuth connection, shown on the
settings page and in both APIs, read again when the sandbox clock passes a handover, kept (and
the failure shown) when one account's reads fail, and said to be unavailable without OAuth."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from databases import Database

from app.deps import Deps
from app.oncall.refresh import OnCallRefresher
from pdsandbox.rest.seed import ROTATION_START, WEEK
from tests.conftest import FakeClock, admin_headers
from tests.fuzz.test_api_schema import assert_documented
from tests.installations.conftest import GLOBEX_USER, Sandbox, signed_in
from tests.oncall.conftest import DATABASE, PLATFORM, connect_services, services_on

ADA = ("Ada Lovelace", "ada@acme.example")
BOB = ("Bob Builder", "bob@acme.example")


def primary_now(clock: FakeClock) -> tuple[tuple[str, str], tuple[str, str], datetime]:
    """Who is on "Acme Primary" and "Acme Secondary" at the clock's time, and the handover."""
    turns = int((clock.now.timestamp() - ROTATION_START) // WEEK)
    handover = datetime.fromtimestamp(ROTATION_START + (turns + 1) * WEEK, UTC)
    return (ADA, BOB, handover) if turns % 2 == 0 else (BOB, ADA, handover)


def text_of(page: str) -> str:
    return html.unescape(" ".join(page.split()))


async def test_the_page_shows_who_is_on_call_and_the_levels(
    deps: Deps, sandbox: Sandbox, clock: FakeClock
) -> None:
    http, _ = await signed_in(deps)
    [platform] = await services_on(sandbox, PLATFORM)
    await connect_services(deps, sandbox, http, [platform["id"]])
    first, second, handover = primary_now(clock)

    page = text_of((await http.get("/settings")).text)

    until = handover.strftime("%a %H:%M UTC")
    assert f'On call: <strong class="oncall-name">{first[0]}</strong> until {until}' in page
    # The levels, on demand (a details element): each level's schedule and who is on it.
    assert f"Level 1, pages Acme Primary: <strong>{first[0]}</strong>" in page
    assert f"Level 2, pages Acme Secondary: <strong>{second[0]}</strong>" in page
    assert "(escalates after 30 min)" in page
    assert "On call as read from PagerDuty at" in page


async def test_the_next_on_call_shows_once_the_sandbox_clock_passes_the_handover(
    deps: Deps, sandbox: Sandbox, clock: FakeClock, db: Database
) -> None:
    _, _, handover = primary_now(clock)
    clock.now = handover - timedelta(minutes=2)
    first, second, _ = primary_now(clock)
    http, _ = await signed_in(deps)
    [platform] = await services_on(sandbox, PLATFORM)
    await connect_services(deps, sandbox, http, [platform["id"]])
    before = text_of((await http.get("/settings")).text)

    clock.advance(minutes=3)  # past the handover; the refresh period (5 minutes) is not over
    during = text_of((await http.get("/settings")).text)
    refreshed = await OnCallRefresher(deps).once()
    after = text_of((await http.get("/settings")).text)

    assert f'<strong class="oncall-name">{first[0]}</strong>' in before
    # Stale while it is read again: the last read, said to be so, never an empty page.
    assert f'<strong class="oncall-name">{first[0]}</strong>' in during
    assert "(being read again)" in during
    assert refreshed == 1
    assert f'<strong class="oncall-name">{second[0]}</strong>' in after
    assert "(being read again)" not in after


async def test_the_apis_list_services_levels_and_on_call_users(
    deps: Deps, sandbox: Sandbox, clock: FakeClock
) -> None:
    http, tenant = await signed_in(deps)
    [database] = await services_on(sandbox, DATABASE)
    await connect_services(deps, sandbox, http, [database["id"]])
    _, secondary, handover = primary_now(clock)

    admin = await http.get(f"/admin/v1/tenants/{tenant['id']}/oncall", headers=admin_headers())
    own = await http.get("/v1/oncall", headers={"Authorization": f"Bearer {tenant['ingest_key']}"})
    anonymous = await http.get("/v1/oncall")

    assert admin.status_code == own.status_code == 200, admin.text
    assert_documented("/admin/v1/tenants/{tenant_id}/oncall", "get", admin)
    assert_documented("/v1/oncall", "get", own)
    assert admin.json() == own.json()
    assert anonymous.status_code == 401
    [account] = own.json()["accounts"]
    assert (account["method"], account["available"], account["error"]) == ("oauth", True, None)
    [service] = account["services"]
    assert service["pd_service_id"] == database["id"]
    assert service["escalation_policy"] == {"id": DATABASE, "name": "Database On-Call"}
    level_1, level_2 = service["levels"]
    assert level_1["targets"] == [{"type": "schedule", "id": "PSCAC02", "name": "Acme Secondary"}]
    assert [(u["name"], u["email"], u["level"]) for u in level_1["on_call"]] == [(*secondary, 1)]
    assert datetime.fromisoformat(level_1["on_call"][0]["until"]) == handover
    assert level_1["on_call"][0]["schedule"] == {"id": "PSCAC02", "name": "Acme Secondary"}
    # Level 2 names Ada herself: on call for good, no shift.
    assert level_2["targets"] == [{"type": "user", "id": "PADA001", "name": "Ada Lovelace"}]
    [ada] = level_2["on_call"]
    assert (ada["name"], ada["until"], ada["schedule"], ada["level"]) == (ADA[0], None, None, 2)
    assert service["on_call"] == level_1["on_call"]


async def test_keys_added_by_hand_say_on_call_is_not_available_and_why(deps: Deps) -> None:
    http, tenant = await signed_in(deps)
    added = await http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Checkout", "routing_key": "a" * 32},
        headers=admin_headers(),
    )
    assert added.status_code == 201

    answer = await http.get(f"/admin/v1/tenants/{tenant['id']}/oncall", headers=admin_headers())
    page = text_of((await http.get("/settings")).text)

    [account] = answer.json()["accounts"]
    assert (account["method"], account["available"]) == ("manual", False)
    assert "REST API" in account["unavailable_reason"]
    assert [s["name"] for s in account["services"]] == ["Checkout"]
    assert account["services"][0]["on_call"] == []
    assert "On call: not available. Pasted integration keys reach PagerDuty's Events API" in page


async def test_one_accounts_failure_is_shown_and_the_others_are_read(
    deps: Deps, sandbox: Sandbox, clock: FakeClock
) -> None:
    http, tenant = await signed_in(deps)
    [platform] = await services_on(sandbox, PLATFORM)
    acme = await connect_services(deps, sandbox, http, [platform["id"]])
    globex_service = next(
        s for s in (await sandbox.account("globex-eu"))["services"] if s["name"] == "Billing API"
    )
    globex = await connect_services(deps, sandbox, http, [globex_service["id"]], user=GLOBEX_USER)
    first_read = await _accounts(http, tenant)
    await sandbox.http.post(
        f"{sandbox.url}/_sandbox/tokens/revoke", json={"subdomain": "acme-corp"}
    )

    clock.advance(minutes=6)
    await http.get("/settings")  # read lately: both are kept fresh
    assert await OnCallRefresher(deps).once() == 2
    accounts = await _accounts(http, tenant)
    page = text_of((await http.get("/settings")).text)

    assert accounts[acme]["error"] is not None
    assert "HTTP 401" in accounts[acme]["error"]
    # The last good read stays, stale, beside the failure.
    assert accounts[acme]["services"] == first_read[acme]["services"]
    assert accounts[acme]["stale"] is False
    assert accounts[globex]["error"] is None
    assert datetime.fromisoformat(accounts[globex]["fetched_at"]) == clock.now
    assert accounts[globex]["services"][0]["on_call"][0]["name"] in ("Hank Scorpio", "Greta Berg")
    assert "Reading who is on call failed" in page


async def test_a_rate_limited_read_keeps_the_last_one(
    deps: Deps, sandbox: Sandbox, clock: FakeClock
) -> None:
    http, tenant = await signed_in(deps)
    [platform] = await services_on(sandbox, PLATFORM)
    acme = await connect_services(deps, sandbox, http, [platform["id"]])
    first = await _accounts(http, tenant)
    await sandbox.control(rest_rate_limit=1)  # type: ignore[arg-type]

    clock.advance(minutes=6)
    await OnCallRefresher(deps).once()
    later = await _accounts(http, tenant)

    assert "HTTP 429" in later[acme]["error"]
    assert later[acme]["services"] == first[acme]["services"]
    assert later[acme]["fetched_at"] == first[acme]["fetched_at"]


async def _accounts(http: httpx2.AsyncClient, tenant: dict[str, Any]) -> dict[str, Any]:
    answer = await http.get(f"/admin/v1/tenants/{tenant['id']}/oncall", headers=admin_headers())
    assert answer.status_code == 200, answer.text
    return {a["installation_id"]: a for a in answer.json()["accounts"]}
