"""The analytics over HTTP: the admin API and the tenant's own session give the same figures,
a bad window is a 400 naming it, targets are checked and saved from the API and the page."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import httpx2
from databases import Database

from app.analytics.rollup import fold
from tests.analytics.test_figures import scripted
from tests.conftest import admin_headers


async def sign_in(client: httpx2.AsyncClient, tenant_id: object) -> str:
    link = await client.post(f"/admin/v1/tenants/{tenant_id}/login-links", headers=admin_headers())
    await client.get(link.json()["url"])
    page = await client.get("/settings/analytics")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def test_the_admin_api_and_the_session_give_the_same_figures(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, a, _, _ = await scripted(db)
    await fold(db)
    answer = await client.get(
        f"/admin/v1/tenants/{tenant_id}/analytics?window=7d", headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["window"] == "7d"
    totals = body["totals"]
    assert (totals["alerts"], totals["incidents"], totals["suppressed"]) == (12, 5, 2)
    assert (totals["mtta_seconds"], totals["mttr_seconds"]) == (180.0, 900.0)
    assert totals["noise"] == {"alerts_per_incident": 2.4, "resolved_without_acknowledgement": 1}
    by_name = {s["name"]: s for s in body["services"]}
    assert by_name["Checkout"]["service_id"] == str(a)
    assert by_name["Payments"]["delivery_success_rate"] == 0.5
    assert body["busiest_sources"][0] == {"source": "db1", "alerts": 9}
    assert len(body["series"]["bars"]) == 7

    await sign_in(client, tenant_id)
    own = await client.get("/settings/analytics.json?window=7d")
    assert own.status_code == 200
    assert own.json() == body


async def test_a_bad_window_is_refused_naming_it(db: Database, client: httpx2.AsyncClient) -> None:
    tenant_id, *_ = await scripted(db)
    answer = await client.get(
        f"/admin/v1/tenants/{tenant_id}/analytics?window=1y", headers=admin_headers()
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "message": "window: must be one of 24h, 7d, 30d",
        "field": "window",
    }
    await sign_in(client, tenant_id)
    own = await client.get("/settings/analytics.json?window=week")
    assert own.status_code == 400
    assert own.json()["error"]["field"] == "window"
    page = await client.get("/settings/analytics?window=week")
    assert page.status_code == 400
    assert "must be one of 24h, 7d, 30d" in page.text


async def test_another_tenant_or_no_token_sees_nothing(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, *_ = await scripted(db)
    assert (await client.get(f"/admin/v1/tenants/{tenant_id}/analytics")).status_code == 401
    unknown = "00000000-0000-4000-8000-000000000000"
    answer = await client.get(f"/admin/v1/tenants/{unknown}/analytics", headers=admin_headers())
    assert answer.status_code == 404
    assert (await client.get("/settings/analytics.json")).status_code == 401


async def test_targets_are_checked_and_saved_through_the_api(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, *_ = await scripted(db)
    url = f"/admin/v1/tenants/{tenant_id}/analytics/targets"
    refused = [
        ({"targets": {"urgent": {}}}, "targets.urgent"),
        (
            {"targets": {"critical": {"acknowledge_seconds": 0}}},
            "targets.critical.acknowledge_seconds",
        ),
        ({"targets": {"critical": {"resolve_seconds": "1h"}}}, "targets.critical.resolve_seconds"),
        ({"targets": {"critical": {"ack": 60}}}, "targets.critical.ack"),
        ({"target": {}}, "target"),
        # A key no JSON answer could carry as it is (an unpaired surrogate) is named escaped,
        # not a 500 while the refusal is written.
        ({"targets": {"a\ud800b": {}}}, "targets.a\\ud800b"),
        ({"targets": {"critical": {"x\ud800": 60}}}, "targets.critical.x\\ud800"),
        ({"x\ud800": {}}, "x\\ud800"),
    ]
    for body, field in refused:
        # Encoded here: json.dumps writes an unpaired surrogate as an escape, as any sender may.
        answer = await client.put(
            url,
            content=json.dumps(body).encode(),
            headers={**admin_headers(), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422, body
        assert answer.json()["error"]["field"] == field
    saved = await client.put(
        url,
        json={"targets": {"critical": {"acknowledge_seconds": 300, "resolve_seconds": None}}},
        headers=admin_headers(),
    )
    assert saved.status_code == 200
    expected = {"targets": {"critical": {"acknowledge_seconds": 300, "resolve_seconds": None}}}
    assert saved.json() == expected
    assert (await client.get(url, headers=admin_headers())).json() == expected


async def test_the_page_shows_the_figures_and_saves_targets(
    db: Database, client: httpx2.AsyncClient
) -> None:
    tenant_id, *_ = await scripted(db)
    await fold(db)
    csrf = await sign_in(client, tenant_id)
    page = await client.get("/settings/analytics")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert re.search(r'id="fig-alerts">12<', text)
    assert re.search(r'id="fig-mtta">3 min<', text)
    assert re.search(r'id="fig-mttr">15 min<', text)
    assert 'aria-current="page">Last 24 hours<' in text
    assert text.count("<svg") == 2

    refused = await client.post(
        "/settings/analytics/targets",
        data={"csrf_token": csrf, "acknowledge_critical": "five", "resolve_critical": "60"},
    )
    assert refused.status_code == 422
    shown = html.unescape(refused.text)
    assert 'id="acknowledge_critical-error"' in shown
    assert 'value="five"' in shown
    assert 'value="60"' in shown

    saved = await client.post(
        "/settings/analytics/targets",
        data={"csrf_token": csrf, "acknowledge_critical": "3", "window": "7d"},
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/settings/analytics?window=7d#targets"
    # The next fold (the test's clock stands still: a shorter lag stands for a minute later).
    await fold(db, lag=timedelta(minutes=1))
    after = html.unescape((await client.get("/settings/analytics?window=7d")).text)
    assert "Targets saved." in after
    assert 'id="acknowledge_critical" name="acknowledge_critical" value="3"' in after
    # Alerts are judged against the targets of their day: a4, still waiting, misses the new
    # one; a2 and a3 had ended before it was set.
    assert "1 missed acknowledge target, 0 missed resolve targets." in after
    assert after.count('class="breach"') == 1
