"""The "Connect PagerDuty" settings page as a customer uses it, in Chromium, against the sandbox.

Each test gets its own `pdconnect serve` (own database, own sandbox), so the sandbox account
starts from its seed every time.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Server

ACCOUNT = "acme-corp"
ACME_USER = "PADA001"
ACME_SERVICE_COUNT = 160
INTEGRATION_NAME = "pdconnect"
NEW_SERVICE = "Storefront Edge Browser Test"
NEW_SERVICE_POLICY = "PEPAC02"
UUID = r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
PICKER_URL = re.compile(rf"/settings/installations/{UUID}/services$")
NOT_CONNECTED = "No PagerDuty account is connected yet"
SCREENSHOT = "/tmp/pdconnect-settings.png"  # noqa: S108 - a fixed place to look at it

# The sandbox is on 127.0.0.1: never route it through a proxy from the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sandbox_account(server: Server, subdomain: str) -> dict[str, Any]:
    url = f"{server.sandbox_url}/_sandbox/accounts/{subdomain}"
    with _LOCAL.open(url, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def our_integrations(server: Server, subdomain: str) -> list[tuple[str, str]]:
    """(service name, integration id) for every integration named like ours."""
    account = sandbox_account(server, subdomain)
    return [
        (service["name"], integration["id"])
        for service in account["services"]
        for integration in service["integrations"]
        if integration["name"] == INTEGRATION_NAME
    ]


def sign_in(page: Page, server: Server) -> None:
    page.goto(server.sign_in_url)
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("#sandbox-banner")).to_contain_text("Sandbox PagerDuty")
    expect(page.locator("h1")).to_contain_text("PagerDuty for")


def connect_and_approve(page: Page, server: Server) -> None:
    """From the settings page: Connect PagerDuty, approve as Ada, land on the picker."""
    page.locator("#connect-oauth").click()
    page.wait_for_url(f"{server.sandbox_url}/**")
    expect(page.locator("#approve")).to_be_visible()
    page.locator("select#user").select_option(ACME_USER)
    page.locator("#approve").click()
    page.wait_for_url(PICKER_URL)
    assert page.url.startswith(server.base_url)
    expect(page.locator("h1")).to_have_text("Choose the services to page")


def test_connect_two_services_and_a_new_one_then_reconnect(page: Page, server: Server) -> None:
    # The sandbox issues id_tokens as PagerDuty does: the issuer its discovery document names
    # is on its app host, not on the identity host that serves the document and the keys.
    discovery = f"{server.sandbox_url}/identity/global/oauth/anonymous"
    with _LOCAL.open(f"{discovery}/.well-known/openid-configuration", timeout=10) as response:
        document = json.load(response)
    assert document["issuer"] == f"{server.sandbox_url}/app/global/oauth/anonymous"
    assert document["jwks_uri"] == f"{discovery}/jwks"
    sign_in(page, server)
    expect(page.locator("#no-accounts")).to_contain_text(NOT_CONNECTED)
    expect(page.locator("tr.service")).to_have_count(0)

    connect_and_approve(page, server)
    expect(page.locator("p.flash-ok")).to_contain_text(f"PagerDuty account {ACCOUNT}")
    picks = page.locator("label.pick")
    expect(picks).to_have_count(ACME_SERVICE_COUNT)
    expect(page.locator("label.pick input:disabled")).to_have_count(0)

    first, second = picks.nth(0), picks.nth(1)
    chosen = [
        first.locator(".pick-name").inner_text().strip(),
        second.locator(".pick-name").inner_text().strip(),
    ]
    first.locator("input[type=checkbox]").check()
    second.locator("input[type=checkbox]").check()
    page.locator("#new-service-name").fill(NEW_SERVICE)
    page.locator("#new-service-policy").select_option(NEW_SERVICE_POLICY)
    page.locator("#save-services").click()

    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("p.flash-ok")).to_have_text("Connected 3 services.")
    expect(page.locator("#no-accounts")).to_have_count(0)
    expect(page.locator(f".installation[data-subdomain='{ACCOUNT}']")).to_have_count(1)
    names = page.locator("tr.service td.service-name")
    expect(names).to_have_count(3)
    expect(page.locator("tr.service", has_text=NEW_SERVICE)).to_have_count(1)
    assert sorted(names.all_inner_texts()) == sorted([*chosen, NEW_SERVICE])

    created = our_integrations(server, ACCOUNT)
    assert sorted(name for name, _ in created) == sorted([*chosen, NEW_SERVICE])

    # Connecting the same account again shows what is connected and creates nothing twice.
    connect_and_approve(page, server)
    expect(page.locator("p.flash-ok")).to_contain_text(f"Reconnected PagerDuty account {ACCOUNT}")
    expect(page.locator("label.pick")).to_have_count(ACME_SERVICE_COUNT + 1)
    connected = page.locator("label.pick", has_text="(connected)")
    expect(connected).to_have_count(3)
    expect(connected.locator("input:checked:disabled")).to_have_count(3)
    page.locator("#save-services").click()

    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("p.flash-error")).to_have_count(0)
    expect(page.locator("p.flash-ok")).to_have_text(
        "No new services chosen; 3 services stay connected."
    )
    expect(page.locator(".installation")).to_have_count(1)
    names = page.locator("tr.service td.service-name")
    expect(names).to_have_count(3)
    assert sorted(names.all_inner_texts()) == sorted([*chosen, NEW_SERVICE])

    after = our_integrations(server, ACCOUNT)
    assert len(after) == 3
    assert sorted(after) == sorted(created)

    page.screenshot(path=SCREENSHOT, full_page=True)


def test_denied_consent_shows_a_message_and_connects_nothing(page: Page, server: Server) -> None:
    sign_in(page, server)
    page.locator("#connect-oauth").click()
    page.wait_for_url(f"{server.sandbox_url}/**")
    page.locator("#deny").click()

    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("p.flash-error")).to_contain_text("not approved")
    expect(page.locator("#no-accounts")).to_contain_text(NOT_CONNECTED)
    expect(page.locator(".installation")).to_have_count(0)
    assert our_integrations(server, ACCOUNT) == []
    assert sandbox_account(server, ACCOUNT)["grants"] == []


def test_sign_in_link_works_once(browser: Browser, page: Page, server: Server) -> None:
    sign_in(page, server)

    other = browser.new_context()
    try:
        tab = other.new_page()
        tab.set_default_timeout(15_000)
        response = tab.goto(server.sign_in_url)
        assert response is not None
        assert response.status == 400
        expect(tab.locator("h1")).to_have_text("This sign-in link cannot be used")
        assert not tab.url.endswith("/settings")
        expect(tab.locator("#connect-oauth")).to_have_count(0)
    finally:
        other.close()
