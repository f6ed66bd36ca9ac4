"""The region choices on the settings page, in a browser: a pasted key and a Simple Install of
the sandbox's EU account end up as EU connections."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server

GLOBEX_USER = "PHANK01"  # of globex-eu, the sandbox's EU account
PASTED_KEY = "e" * 32


def test_pasted_key_and_simple_install_in_the_eu(page: Page, server: Server) -> None:
    page.goto(server.sign_in_url)
    page.wait_for_url(f"{server.base_url}/settings")
    # Pasting a key is a second choice, behind "Paste an integration key instead".
    page.locator("#manual-key summary").click()
    # US is preselected: the deployment's PAGERDUTY_REGION is unset.
    expect(page.locator("#manual-region")).to_have_value("us")

    page.locator("#manual-name").fill("Billing (EU)")
    page.locator("#manual-key-input").fill(PASTED_KEY)
    page.locator("#manual-region").select_option("eu")
    page.locator("#manual-key button[type=submit]").click()
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("p.flash-ok")).to_have_text("Added Billing (EU).")
    pasted = page.locator(".installation", has_text="Keys added by hand")
    expect(pasted.locator(".pill.region")).to_have_text("EU")

    page.locator("#connect-install-eu").click()
    # The install page is PagerDuty's US one for both regions (pagerduty.md §1).
    page.wait_for_url(re.compile(rf"^{re.escape(server.sandbox_url)}/app/install/integration\?"))
    page.locator("select#user").select_option(GLOBEX_USER)
    page.locator("#continue").click()
    page.locator("input[name=service]").first.check()
    page.locator("#install").click()

    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("p.flash-ok")).to_contain_text("Its events go to PagerDuty's EU region.")
    installed = page.locator(".installation[data-subdomain='globex-eu']")
    expect(installed.locator(".pill.region")).to_have_text("EU")
