"""The delivery history in Chromium: a thousand deliveries paged back to the oldest, and the
history and an event's page on a phone, without sideways scrolling, and with nothing axe-core
finds wrong at either width."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, ViewportSize, expect

from tests.browser.axe import violations
from tests.browser.conftest import Server

ACCOUNT = "acme-corp"
ALERTS = 1000
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
# Screenshots for people to look at (ignored by git).
ARTIFACTS = Path(__file__).parent / "artifacts"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _json(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback test servers
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with _LOCAL.open(request, timeout=60) as response:
        return json.loads(response.read())


def connect_one_service(page: Page, server: Server) -> None:
    """Sign in, and add one of the sandbox's integration keys by hand (the quickest way to a
    connected service: no consent screens)."""
    page.goto(server.sign_in_url)
    page.wait_for_url(f"{server.base_url}/settings")
    account = _json(f"{server.sandbox_url}/_sandbox/accounts/{ACCOUNT}")
    key = next(
        i["integration_key"]
        for s in account["services"]
        for i in s["integrations"]
        if i["type"] == "events_api_v2_inbound_integration"
    )
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.content())
    assert csrf is not None
    added = page.request.post(
        f"{server.base_url}/settings/services/manual",
        form={"csrf_token": csrf.group(1), "name": "Checkout", "routing_key": key, "api": "v2"},
    )
    assert added.ok


def send_alerts(server: Server, count: int) -> None:
    """Through the ingest API, at most 1000 alerts a request."""
    for start in range(0, count, 1000):
        alerts = [
            {"dedup_key": f"load-{n:04}", "summary": f"Load test alert {n:04}", "severity": "P3"}
            for n in range(start, min(count, start + 1000))
        ]
        answer = _json(
            f"{server.base_url}/v1/alerts",
            {"alerts": alerts},
            {"Authorization": f"Bearer {server.ingest_key}"},
        )
        assert len(answer["events"]) == len(alerts)


def summaries(page: Page) -> list[str]:
    return [
        text.strip() for text in page.locator("tr.alert-head .alert-summary").all_text_contents()
    ]


def no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, document.body.scrollWidth]"
    )
    assert widths[0] == widths[1] == PHONE["width"], widths
    assert widths[2] <= PHONE["width"], widths


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def accessible_at_both_widths(page: Page, name: str) -> None:
    """axe-core finds nothing on the page, wide and on a phone, where it also fits the width;
    a screenshot of each."""
    for label, size in (("1280", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(size)
        shoot(page, f"{name}-{label}")
        if size == PHONE:
            no_sideways_scroll(page)
        found = violations(page)
        assert found == [], f"{name} at {label} px: {found}"


def test_paging_reaches_the_oldest_of_a_thousand_deliveries(page: Page, server: Server) -> None:
    connect_one_service(page, server)
    send_alerts(server, ALERTS)
    page.set_viewport_size(DESKTOP)
    page.goto(f"{server.base_url}/settings/deliveries")
    expect(page.locator("h1")).to_have_text("Deliveries")
    expect(page.locator("#history-count")).to_have_text("1\u202f000 deliveries")
    expect(page.locator("#history-kept")).to_contain_text("History is kept for 30 days")

    # Older, page after page, until there is none: every alert once, newest to oldest.
    seen: list[str] = []
    while True:
        seen += summaries(page)
        older = page.locator("#page-older")
        if older.count() == 0:
            break
        older.click()
    assert seen == [f"Load test alert {n:04}" for n in reversed(range(ALERTS))]

    # And straight there from the first page.
    page.goto(f"{server.base_url}/settings/deliveries")
    page.locator("#page-oldest").click()
    assert summaries(page)[-1] == "Load test alert 0000"
    expect(page.locator("#page-older")).to_have_count(0)
    # The page's URL says where it is: opened again, it shows the same.
    shared = page.url
    page.goto(shared)
    assert summaries(page)[-1] == "Load test alert 0000"

    # The filters are a plain form: a search, then its status.
    page.goto(f"{server.base_url}/settings/deliveries")
    page.get_by_label("Summary or dedup key contains").fill("alert 012")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#history-count")).to_have_text("10 deliveries match these filters")
    assert "q=alert+012" in page.url
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#no-deliveries")).to_have_text("No delivery matches these filters.")


def test_the_history_and_an_event_fit_a_phone(page: Page, server: Server) -> None:
    connect_one_service(page, server)
    long_key = "k" * 200  # one long word: it must wrap, not widen the page
    _json(
        f"{server.base_url}/v1/alerts",
        {
            "alerts": [
                {"dedup_key": long_key, "summary": "Disk almost full on db1 " + "x" * 120},
                {"dedup_key": "cpu", "summary": "CPU high", "severity": "critical"},
            ]
        },
        {"Authorization": f"Bearer {server.ingest_key}"},
    )
    page.set_viewport_size(PHONE)
    page.goto(f"{server.base_url}/settings/deliveries")
    expect(page.locator("tr.delivery")).to_have_count(2)
    no_sideways_scroll(page)
    # Stacked rows: each cell says what it is.
    label = page.locator("tr.delivery td").first.evaluate(
        "cell => getComputedStyle(cell, '::before').content"
    )
    assert label == '"Action"'
    accessible_at_both_widths(page, "deliveries")

    page.locator("tr.delivery a").first.click()
    expect(page.locator("#sent-body")).to_contain_text('"event_action": "trigger"')
    accessible_at_both_widths(page, "event")

    # A filter it cannot read is said beside it, and the page is as usable.
    page.goto(f"{server.base_url}/settings/deliveries?status=exploded&q=cpu")
    expect(page.locator("#filter-status-error")).to_contain_text("Pick a status from the list")
    expect(page.locator("#history-count")).to_have_text("1 delivery matches these filters")
    accessible_at_both_widths(page, "deliveries-refused-filter")
