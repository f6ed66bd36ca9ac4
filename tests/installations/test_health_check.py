"""The connection health check: every line is ok on a healthy connection, and each one fails
when what it checks breaks in the sandbox (token revoked, service or integration deleted,
subscription disabled, PagerDuty answering 5xx or not at all, a routing key refused, many
failed delivery attempts). Through the admin API, the settings page's button and the upkeep."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from databases import Database

from app.deps import Deps
from app.installations import store
from app.installations.health_check import Report, check_connection
from app.installations.upkeep import Upkeep
from tests.conftest import FakeClock, admin_headers
from tests.fuzz.test_api_schema import assert_documented
from tests.installations.conftest import Sandbox, signed_in
from tests.oncall.conftest import PLATFORM, connect_services, csrf_of, services_on


async def connected(
    deps: Deps, sandbox: Sandbox
) -> tuple[httpx2.AsyncClient, dict[str, Any], list[dict[str, Any]]]:
    """A tenant with two acme-corp services connected by OAuth."""
    http, tenant = await signed_in(deps)
    chosen = await services_on(sandbox, PLATFORM, 2)
    await connect_services(deps, sandbox, http, [s["id"] for s in chosen])
    return http, tenant, chosen


async def check(http: httpx2.AsyncClient, tenant: dict[str, Any]) -> dict[str, Any]:
    answer = await http.post(
        f"/admin/v1/tenants/{tenant['id']}/health-check", headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    assert_documented("/admin/v1/tenants/{tenant_id}/health-check", "post", answer)
    [report] = answer.json()["accounts"]
    result: dict[str, Any] = report
    return result


def lines(report: dict[str, Any], check_name: str) -> list[dict[str, Any]]:
    return [line for line in report["lines"] if line["check"] == check_name]


def line_of(report: dict[str, Any], check_name: str, subject: str | None = None) -> dict[str, Any]:
    [line] = [x for x in lines(report, check_name) if subject is None or x["subject"] == subject]
    return line


async def arrivals(sandbox: Sandbox) -> list[dict[str, Any]]:
    answer = await sandbox.http.get(f"{sandbox.url}/_sandbox/events")
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


async def test_a_healthy_connection_has_every_line_ok_and_pages_nobody(
    deps: Deps, sandbox: Sandbox
) -> None:
    http, tenant, chosen = await connected(deps, sandbox)

    report = await check(http, tenant)

    assert report["status"] == "ok", report
    by_check = [(line["check"], line["subject"]) for line in report["lines"]]
    names = sorted(s["name"] for s in chosen)
    assert sorted(by_check, key=str) == sorted(
        [
            ("api", None),
            ("token", None),
            ("scopes", None),
            ("error_rate", None),
            *(("service", n) for n in names),
            *(("webhook", n) for n in names),
            *(("routing_key", n) for n in names),
        ],
        key=str,
    )
    assert all(line["status"] == "ok" for line in report["lines"])
    assert re.fullmatch(r"answered HTTP 200 in \d+ ms", line_of(report, "api")["value"])
    assert "authorized by Ada Lovelace (ada@acme.example)" in line_of(report, "token")["value"]
    assert line_of(report, "scopes")["value"].startswith("openid write")
    assert "no delivery in the last 7 days" in lines(report, "webhook")[0]["value"]
    # The keys were proven with change events, which open no incident.
    changes = [e for e in await arrivals(sandbox) if e["endpoint"] == "change"]
    assert len(changes) == 2
    incidents = await sandbox.http.get(f"{sandbox.url}/_sandbox/incidents")
    assert incidents.json()["incidents"] == []
    # The report is kept: GET answers it again.
    last = await http.get(f"/admin/v1/tenants/{tenant['id']}/health-check", headers=admin_headers())
    assert_documented("/admin/v1/tenants/{tenant_id}/health-check", "get", last)
    assert last.json()["accounts"] == [report]


async def test_a_revoked_token_fails_the_token_line(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant, _ = await connected(deps, sandbox)
    await sandbox.http.post(
        f"{sandbox.url}/_sandbox/tokens/revoke", json={"subdomain": "acme-corp"}
    )

    report = await check(http, tenant)

    token = line_of(report, "token")
    assert token["status"] == "failed"
    assert "HTTP 401" in token["value"]
    assert "Reconnect" in token["action"]
    # PagerDuty answered, so it is reachable; what needs the token is not checked.
    assert line_of(report, "api")["status"] == "ok"
    assert line_of(report, "service")["value"].startswith("not checked")
    assert await db.fetch_val("SELECT status FROM installations") == "needs_reconnect"


async def test_a_service_deleted_in_pagerduty_fails_its_line(deps: Deps, sandbox: Sandbox) -> None:
    http, tenant, chosen = await connected(deps, sandbox)
    gone, kept = chosen
    await sandbox.http.delete(f"{sandbox.url}/_sandbox/accounts/acme-corp/services/{gone['id']}")

    report = await check(http, tenant)

    line = line_of(report, "service", gone["name"])
    assert line["status"] == "failed"
    assert line["value"] == "the service was deleted in PagerDuty"
    assert "Choose services" in line["action"]
    assert line_of(report, "service", kept["name"])["status"] == "ok"
    # Its events are held, as the scheduled check does.
    services = (
        await http.get(f"/admin/v1/tenants/{tenant['id']}/services", headers=admin_headers())
    ).json()["services"]
    assert {s["name"]: s["health"] for s in services} == {
        gone["name"]: "gone",
        kept["name"]: "healthy",
    }


async def test_a_deleted_integration_fails_its_service_line(deps: Deps, sandbox: Sandbox) -> None:
    http, tenant, chosen = await connected(deps, sandbox)
    account = await sandbox.account("acme-corp")
    [ours] = [
        i
        for s in account["services"]
        if s["id"] == chosen[0]["id"]
        for i in s["integrations"]
        if i["name"] == "pdconnect"
    ]
    await sandbox.http.delete(
        f"{sandbox.url}/_sandbox/accounts/acme-corp/services/{chosen[0]['id']}"
        f"/integrations/{ours['id']}"
    )

    report = await check(http, tenant)

    line = line_of(report, "service", chosen[0]["name"])
    assert (line["status"], line["value"]) == (
        "failed",
        "its integration was deleted in PagerDuty",
    )
    assert line["action"].startswith("Reconnect the account")


@pytest.mark.parametrize(
    ("how", "why"),
    [
        ("disable", "temporarily disabled by PagerDuty after refused deliveries"),
        ("switch_off", "switched off in PagerDuty"),
    ],
)
async def test_a_disabled_subscription_fails_the_webhook_line(
    deps: Deps, sandbox: Sandbox, db: Database, clock: FakeClock, how: str, why: str
) -> None:
    http, tenant, chosen = await connected(deps, sandbox)
    [sub] = [
        s
        for s in (await sandbox.account("acme-corp"))["webhook_subscriptions"]
        if s["filter"]["id"] == chosen[0]["id"]
    ]
    if how == "disable":
        done = await sandbox.http.post(
            f"{sandbox.url}/_sandbox/webhook_subscriptions/{sub['id']}/disable"
        )
    else:
        # As the account's owner does in PagerDuty: with a token of the account.
        token = deps.vault.decrypt(await db.fetch_val("SELECT access_token_enc FROM installations"))
        done = await sandbox.http.put(
            f"{sandbox.url}/us/api/webhook_subscriptions/{sub['id']}",
            json={"webhook_subscription": {"active": False}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert done.status_code == 200, done.text
    # PagerDuty delivered to the other one two hours ago (as pdconnect recorded it).
    other = await db.fetch_val(
        "SELECT id FROM webhook_subscriptions WHERE pd_service_id = :id", {"id": chosen[1]["id"]}
    )
    await db.execute(
        "INSERT INTO webhook_deliveries (webhook_id, subscription_id, event_type, received_at)"
        " VALUES ('w1', :sub, 'incident.triggered', :at)",
        {"sub": other, "at": clock.now - timedelta(hours=2)},
    )

    report = await check(http, tenant)

    line = line_of(report, "webhook", chosen[0]["name"])
    assert line["status"] == "failed"
    assert line["value"] == f"{why}; no delivery in the last 7 days"
    assert "enable the subscription" in line["action"]
    fine = line_of(report, "webhook", chosen[1]["name"])
    assert fine["status"] == "ok"
    assert fine["value"].startswith("enabled; last delivery ")
    assert fine["value"].endswith("(2 h ago)")


class FaultyRest:
    """PagerDuty's REST API failing (`mode` "5xx" or "timeout"), everything else reaching the
    sandbox as usual."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sandbox = httpx2.AsyncClient()

    async def handler(self, request: httpx2.Request) -> httpx2.Response:
        if "/api/" in request.url.path:
            if self.mode == "timeout":
                raise httpx2.ReadTimeout("timed out", request=request)
            return httpx2.Response(503, text="<html>503 Service Unavailable</html>")
        answer = await self.sandbox.request(
            request.method, request.url, headers=request.headers, content=request.content
        )
        return httpx2.Response(answer.status_code, headers=answer.headers, content=answer.content)


@pytest.fixture
async def faulty(deps: Deps, request: pytest.FixtureRequest) -> AsyncIterator[Deps]:
    rest = FaultyRest(request.param)
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(rest.handler))
    try:
        yield Deps(config=deps.config, db=deps.db, http=http, clock=deps.clock)
    finally:
        await http.aclose()
        await rest.sandbox.aclose()


@pytest.mark.parametrize(
    ("faulty", "said"),
    [("5xx", "answered HTTP 503"), ("timeout", "did not answer in time")],
    indirect=["faulty"],
)
async def test_pagerduty_failing_fails_the_api_line(
    deps: Deps, sandbox: Sandbox, faulty: Deps, said: str
) -> None:
    _, tenant, _ = await connected(deps, sandbox)
    [installation] = await store.list_installations(deps.db, uuid.UUID(tenant["id"]))

    report = await check_connection(faulty, installation, trigger="api")

    api = _line(report, "api")
    assert api.status == "failed"
    assert said in api.value
    assert "status.pagerduty.com" in (api.action or "")
    # The Events API still answers: the keys are proven all the same.
    assert {line.status for line in report.lines if line.check == "routing_key"} == {"ok"}


def _line(report: Report, check_name: str) -> Any:
    [line] = [x for x in report.lines if x.check == check_name]
    return line


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"outage": True}, "HTTP 503"),
        ({"hang": True}, "did not answer within 0.5 s"),
        ({"error_rate": 1, "error_status": 500}, "HTTP 500"),
    ],
)
async def test_the_events_api_failing_fails_the_routing_key_lines(
    deps: Deps, sandbox: Sandbox, fault: dict[str, Any], said: str
) -> None:
    _, tenant, _ = await connected(deps, sandbox)
    [installation] = await store.list_installations(deps.db, uuid.UUID(tenant["id"]))
    await sandbox.http.post(f"{sandbox.url}/_sandbox/faults", json=fault)
    try:
        report = await check_connection(deps, installation, trigger="api", call_timeout=0.5)
    finally:
        await sandbox.http.delete(f"{sandbox.url}/_sandbox/faults")

    keys = [line for line in report.lines if line.check == "routing_key"]
    assert len(keys) == 2
    for line in keys:
        assert line.status == "failed"
        assert said in line.value
        assert "status.pagerduty.com" in (line.action or "")


async def test_a_refused_routing_key_fails_and_a_ruleset_key_is_not_checkable(
    deps: Deps, sandbox: Sandbox
) -> None:
    http, tenant = await signed_in(deps)
    for name, key in (("Unknown", "0" * 32), ("Rules", "R" + "0" * 31)):
        added = await http.post(
            f"/admin/v1/tenants/{tenant['id']}/services",
            json={"name": name, "routing_key": key},
            headers=admin_headers(),
        )
        assert added.status_code == 201, added.text

    report = await check(http, tenant)

    refused = line_of(report, "routing_key", "Unknown")
    assert refused["status"] == "failed"
    assert refused["value"].startswith("refused (HTTP 400")
    assert "Invalid routing key" in refused["value"]
    assert "paste a new key" in refused["action"]
    ruleset = line_of(report, "routing_key", "Rules")
    assert ruleset["status"] == "warning"
    assert "ruleset keys refuse change events" in ruleset["value"]
    # Keys added by hand give no REST access: those lines are missing, and the report says why.
    assert {line["check"] for line in report["lines"]} == {"error_rate", "routing_key"}
    assert "no access to PagerDuty's REST API" in report["not_checked"]


async def test_many_failed_attempts_fail_the_error_rate_line(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant, chosen = await connected(deps, sandbox)
    service = await db.fetch_one(
        "SELECT id, routing_key_hash FROM pd_services WHERE pd_service_id = :id",
        {"id": chosen[0]["id"]},
    )
    assert service is not None
    outcomes = ["retry", "retry", "rejected", "abandoned", "delivered", "rate_limited"]
    for outcome in outcomes:
        event = await db.fetch_val(
            """
            INSERT INTO events (tenant_id, service_id, routing_key_hash, dedup_key, kind, api,
                body, source, status)
            VALUES (:tenant, :service, :hash, :dedup, 'trigger', 'v2', CAST(:body AS jsonb),
                'native', 'queued')
            RETURNING id
            """,
            {
                "tenant": uuid.UUID(tenant["id"]),
                "service": service._mapping["id"],
                "hash": service._mapping["routing_key_hash"],
                "dedup": f"d-{outcome}-{uuid.uuid4()}",
                "body": json.dumps({"event_action": "trigger"}),
            },
        )
        await db.execute(
            """
            INSERT INTO delivery_attempts (event_id, routing_key_hash, finished_at, outcome)
            VALUES (:event, :hash, now(), :outcome)
            """,
            {"event": event, "hash": service._mapping["routing_key_hash"], "outcome": outcome},
        )

    report = await check(http, tenant)

    line = line_of(report, "error_rate")
    assert line["status"] == "failed"
    assert line["value"] == "4 of 6 attempts failed (67%); 1 rate limited by PagerDuty"
    assert "Deliveries" in line["action"]


async def test_the_button_checks_and_the_page_shows_the_report(
    deps: Deps, sandbox: Sandbox
) -> None:
    http, _, _ = await connected(deps, sandbox)
    page = (await http.get("/settings")).text
    assert "Not checked yet." in page
    [installation_id] = re.findall(r'action="/settings/installations/([^/]+)/health-check"', page)

    answer = await http.post(
        f"/settings/installations/{installation_id}/health-check",
        data={"csrf_token": csrf_of(page)},
    )
    shown = (await http.get("/settings")).text

    assert answer.status_code == 303
    assert answer.headers["location"] == f"/settings#check-{installation_id}"
    assert "Connection check finished: everything is ok." in shown
    assert "from this page" in shown
    assert shown.count('class="health-line"') == 10
    assert 'data-check="routing_key" data-status="ok"' in shown


async def test_the_button_refuses_without_its_csrf_token(deps: Deps, sandbox: Sandbox) -> None:
    http, _, _ = await connected(deps, sandbox)
    page = (await http.get("/settings")).text
    [installation_id] = re.findall(r'action="/settings/installations/([^/]+)/health-check"', page)

    answer = await http.post(f"/settings/installations/{installation_id}/health-check")
    other = await http.post(
        f"/settings/installations/{uuid.uuid4()}/health-check", data={"csrf_token": csrf_of(page)}
    )

    assert answer.status_code in (400, 403)
    assert other.status_code == 404


async def test_the_upkeep_checks_on_schedule_and_probes_keys_once_a_day(
    deps: Deps, sandbox: Sandbox, db: Database, clock: FakeClock
) -> None:
    http, tenant, _ = await connected(deps, sandbox)
    upkeep = Upkeep(deps, period=timedelta(minutes=5))

    assert await upkeep.once() == 1
    first = (
        await http.get(f"/admin/v1/tenants/{tenant['id']}/health-check", headers=admin_headers())
    ).json()["accounts"][0]
    probes = len([e for e in await arrivals(sandbox) if e["endpoint"] == "change"])
    await db.execute("UPDATE installations SET next_check_at = now()")
    clock.advance(minutes=5)
    assert await upkeep.once() == 1
    second = (
        await http.get(f"/admin/v1/tenants/{tenant['id']}/health-check", headers=admin_headers())
    ).json()["accounts"][0]
    again = len([e for e in await arrivals(sandbox) if e["endpoint"] == "change"])
    await db.execute("UPDATE installations SET next_check_at = now()")
    clock.advance(hours=24)
    await upkeep.once()
    day_later = len([e for e in await arrivals(sandbox) if e["endpoint"] == "change"])

    assert (first["trigger"], first["status"]) == ("scheduled", "ok")
    assert probes == 2
    # Within the day the keys' lines are carried over, not probed again.
    assert again == 2
    assert second["checked_at"] > first["checked_at"]
    assert lines(second, "routing_key") == lines(first, "routing_key")
    assert second["keys_probed_at"] == first["keys_probed_at"]
    assert day_later == 4
