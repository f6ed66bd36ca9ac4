"""What an operator watches during a connection's whole life: the log says what happened and
never a secret, and /metrics moves with the events.

connect (OAuth, against the sandbox) → ingest → deliver (a real dispatcher, the sandbox's Events
API) → a PagerDuty webhook back → disconnect; every line any logger writes meanwhile, at debug
level, is captured as the JSON the product writes in production.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.observability.logs import JsonFormatter
from app.webhooks.signature import sign
from tests.conftest import ADMIN_TOKEN, BASE_URL, admin_headers
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher
from tests.installations.conftest import consent, follow_callback, start_oauth
from tests.installations.test_lifecycle import csrf_of, incident_event
from tests.live_sandbox import CLIENT_SECRET

ACCOUNT = "acme-corp"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def captured_log() -> Iterator[Captured]:
    root = logging.getLogger()
    handler, level = Captured(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx2.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_whole_life_logs_no_secret_and_moves_the_metrics(stack: Stack) -> None:
    browser = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=create_app(stack.deps), raise_app_exceptions=False),
        base_url=BASE_URL,
    )
    secrets: dict[str, str] = {
        "admin token": ADMIN_TOKEN,
        "client secret": CLIENT_SECRET,
        "secret key": stack.deps.config.secret_key,
    }
    secrets |= {
        f"encryption key {n}": key.decode()
        for n, key in enumerate(stack.deps.config.encryption_keys)
    }
    before = await scrape(browser)
    with captured_log() as log:
        # Sign in and connect by OAuth; pick one service.
        tenant = await stack.tenant("Acme")
        secrets["ingest key"] = tenant["ingest_key"]
        link = await browser.post(
            f"/admin/v1/tenants/{tenant['id']}/login-links", headers=admin_headers()
        )
        secrets["sign-in token"] = parse_qs(urlsplit(link.json()["url"]).query)["token"][0]
        assert (await browser.get(link.json()["url"])).status_code == 303
        location = await consent(stack.sandbox, await start_oauth(browser))
        secrets["authorization code"] = parse_qs(urlsplit(location).query)["code"][0]
        picker = (await follow_callback(browser, location)).headers["location"]
        page = (await browser.get(picker)).text
        secrets["csrf token"] = csrf_of(page)
        pd_service = re.findall(r'data-service-id="([A-Z0-9]+)"', page)[0]
        saved = await browser.post(
            picker, data={"csrf_token": csrf_of(page), "service": [pd_service]}
        )
        assert saved.status_code == 303
        installation_id = picker.split("/")[3]
        secrets |= await _connection_secrets(stack)

        # Ingest, and let a dispatcher deliver it to the sandbox's Events API.
        async with dispatcher(stack):
            accepted = await stack.alert(
                tenant, {"dedup_key": "disk-db1", "summary": "Disk full on db1"}
            )
            assert accepted.status_code == 202, accepted.text
            event_id = accepted.json()["events"][0]["id"]

            async def delivered() -> bool:
                status: str = (await stack.event(tenant, event_id))["status"]
                return status == "delivered"

            await stack.wait_for(delivered)

        # PagerDuty says someone acknowledged it: one forged webhook, then the real one.
        path, secret = await _webhook_target(stack)
        body = incident_event(
            "incident.acknowledged", "acknowledged", pd_service, "disk-db1", at=datetime.now(UTC)
        )
        headers = {"X-Webhook-Id": "wh-1", "Content-Type": "application/json"}
        forged = await browser.post(
            path, content=body, headers={**headers, "X-PagerDuty-Signature": "v1=" + "0" * 64}
        )
        assert forged.status_code == 401
        real = await browser.post(
            path,
            content=body,
            headers={**headers, "X-PagerDuty-Signature": f"v1={sign(secret, body)}"},
        )
        assert real.status_code == 200

        # Disconnect, confirmed.
        confirm = await browser.get(f"/settings/installations/{installation_id}/disconnect")
        done = await browser.post(
            f"/settings/installations/{installation_id}/disconnect",
            data={"csrf_token": csrf_of(confirm.text)},
        )
        assert done.status_code == 303
    after = await scrape(browser)
    await browser.aclose()

    text = "\n".join(log.lines)
    # The log really covers the run: requests with their ids, the delivery with its event.
    assert any('"request_id"' in line and "/pagerduty/callback" in line for line in log.lines)
    assert any(f'"event_id": "{event_id}"' in line for line in log.lines)
    for what, value in secrets.items():
        assert value not in text, f"the log contains the {what}"

    assert (
        moved(before, after, "pdconnect_ingested_events_total", source="native", action="trigger")
        == 1
    )
    assert (
        moved(before, after, "pdconnect_deliveries_total", outcome="delivered", reason="accepted")
        == 1
    )
    assert (
        moved(before, after, "pdconnect_delivery_attempt_seconds_count", outcome="delivered") == 1
    )
    assert moved(before, after, "pdconnect_time_to_page_seconds_count") == 1
    assert moved(before, after, "pdconnect_webhook_verifications_total", result="valid") == 1
    assert moved(before, after, "pdconnect_webhook_verifications_total", result="mismatch") == 1
    assert (
        moved(
            before, after, "pdconnect_http_requests_total", endpoint="native_alerts", status="202"
        )
        == 1
    )
    assert after[("pdconnect_database_up", frozenset())] == 1


async def _connection_secrets(stack: Stack) -> dict[str, str]:
    """Routing keys and webhook secrets PagerDuty issued, and the OAuth tokens we hold."""
    account = await stack.sandbox.account(ACCOUNT)
    found: dict[str, str] = {}
    for service in account["services"]:
        for integration in service["integrations"]:
            if integration["name"] == "pdconnect":
                found[f"routing key of {service['id']}"] = integration["integration_key"]
    for subscription in account["webhook_subscriptions"]:
        found[f"webhook secret {subscription['id']}"] = subscription["secret"]
    row = await stack.deps.db.fetch_one(
        "SELECT access_token_enc, refresh_token_enc FROM installations"
    )
    assert row is not None
    found["access token"] = stack.deps.vault.decrypt(row._mapping["access_token_enc"])
    found["refresh token"] = stack.deps.vault.decrypt(row._mapping["refresh_token_enc"])
    assert len(found) >= 4
    return found


async def _webhook_target(stack: Stack) -> tuple[str, str]:
    row = await stack.deps.db.fetch_one("SELECT id, pd_subscription_id FROM webhook_subscriptions")
    assert row is not None
    account: dict[str, Any] = await stack.sandbox.account(ACCOUNT)
    secret = next(
        s["secret"]
        for s in account["webhook_subscriptions"]
        if s["id"] == row._mapping["pd_subscription_id"]
    )
    return f"/pagerduty/webhooks/{row._mapping['id']}", secret
