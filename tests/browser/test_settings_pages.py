"""The settings sections in Chromium, as a new tenant admin meets them: the picker's search
among the sandbox's 160 services, the warning and one-click first rule once several services
are connected, a wrong regex explained beside its field; and every page fitting a 390 px phone
with no sideways scroll and no axe-core violation. Screenshots of each page at 1280 and 390 px
go to tests/browser/artifacts/ (ignored by git)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, Response, ViewportSize, expect

from tests.browser.axe import violations
from tests.browser.conftest import Server
from tests.browser.test_connect_flow import ACME_USER, PICKER_URL

ARTIFACTS = Path(__file__).parent / "artifacts"
WIDE = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)
# Built beside these pages and linked from their navigation; absent until both are merged.
ELSEWHERE = ("/settings/deliveries",)


def check_page(page: Page, name: str, *, axe: bool = True) -> None:
    """Screenshots at both widths; at 390 px the document is exactly as wide as the viewport;
    axe-core finds nothing at either width."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, size in (("1280", WIDE), ("390", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] == widths[1], f"{name} at {label} px: document {widths[0]} px wide"
        found = violations(page) if axe else []
        assert found == [], f"{name} at {label} px: {found}"
    page.set_viewport_size(WIDE)


def visit(page: Page, server: Server, path: str) -> Response | None:
    return page.goto(f"{server.base_url}{path}")


def sign_in(page: Page, server: Server) -> None:
    page.set_viewport_size(WIDE)
    page.goto(server.sign_in_url)
    page.wait_for_url(f"{server.base_url}/settings")


def approve_in_sandbox(page: Page, server: Server) -> None:
    page.locator("#connect-oauth").click()
    page.wait_for_url(f"{server.sandbox_url}/**")
    page.locator("select#user").select_option(ACME_USER)
    page.locator("#approve").click()
    page.wait_for_url(PICKER_URL)


def test_picker_search_first_rule_and_a_wrong_regex(page: Page, server: Server) -> None:
    sign_in(page, server)
    expect(page.locator("#connect-oauth")).to_have_text("Connect PagerDuty")
    approve_in_sandbox(page, server)

    picks = page.locator("label.pick")
    expect(picks).to_have_count(160)
    expect(page.locator(".pick-policy").first).to_contain_text("escalation policy:")
    page.locator("#picker-q").fill("payments gat")
    expect(page.locator("label.pick:visible")).to_have_count(1)
    expect(page.locator("label.pick:visible .pick-name")).to_have_text("Payments Gateway")
    expect(page.locator("#picker-shown")).to_have_text("1 of 160 services match.")
    page.locator("label.pick:visible input").check()
    expect(page.locator("#picker-count")).to_have_text("1 selected")
    page.locator("#picker-q").fill("payments")
    expect(page.locator("label.pick:visible")).to_have_count(16)
    page.locator("#select-shown").click()
    expect(page.locator("#picker-count")).to_have_text("16 selected")
    page.locator("#picker-q").fill("xyzzy")
    expect(page.locator("#no-match-live")).to_be_visible()
    page.locator("#picker-q").fill("")
    expect(page.locator("label.pick:visible")).to_have_count(160)
    page.locator("#save-services").click()

    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("p.flash-ok")).to_have_text("Connected 16 services.")
    expect(page.locator("h2.account")).to_contain_text("Connected to acme-corp")
    expect(page.locator("h2.account .pill.region")).to_have_text("US")
    # After connecting, connecting more is a secondary action.
    expect(page.locator("#connect-oauth")).to_have_class(re.compile(r"\bsecondary\b"))
    warning = page.locator("#first-rule")
    expect(warning).to_contain_text("Alerts need a routing rule")
    expect(warning).to_contain_text("refused")
    warning.locator("#first-rule-service").select_option(label="Payments Gateway")
    warning.locator("#first-rule-submit").click()
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("p.flash-ok")).to_contain_text("go to Payments Gateway")
    expect(page.locator("#first-rule")).to_have_count(0)

    page.locator("#nav-routing").click()
    page.wait_for_url(f"{server.base_url}/settings/routing")
    expect(page.locator("tr.rule td.rule-name")).to_have_text(["Everything else"])
    page.locator("#rule-name").fill("Database")
    page.locator("#rule-field").fill("labels.team")
    page.locator("#rule-op").select_option("regex")
    page.locator("#rule-value").fill("(db|data")
    page.locator("label.inline-check", has_text="Payments Database").locator("input").check()
    page.get_by_role("button", name="Add rule").click()

    error = page.locator("#rule-value-error")
    expect(error).to_have_text("That regular expression is missing a ')'.")
    expect(page.locator("#rule-value")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#rule-value")).to_have_value("(db|data")
    expect(page.locator("#rule-name")).to_have_value("Database")
    expect(page.locator("#rule-op")).to_have_value("regex")
    checked = page.locator("label.inline-check", has_text="Payments Database").locator("input")
    expect(checked).to_be_checked()
    # Beside the field, and in view: the page opens at the form, not at its top.
    expect(error).to_be_in_viewport()
    expect(page.locator("#rule-value")).to_be_focused()
    page.locator("#rule-value").fill("db|data")
    page.get_by_role("button", name="Add rule").click()
    page.wait_for_url(f"{server.base_url}/settings/routing#add-rule")
    added = page.locator("#add-rule-messages p.flash-ok")
    expect(added).to_have_text("Rule 'Database' added.")
    expect(added).to_be_in_viewport()
    expect(page.locator("tr.rule td.rule-name")).to_have_text(["Everything else", "Database"])


def test_every_page_fits_a_phone_and_passes_axe(page: Page, server: Server) -> None:
    sign_in(page, server)
    check_page(page, "connection-empty")
    approve_in_sandbox(page, server)
    check_page(page, "picker")
    page.locator("#picker-q").fill("checkout")
    page.locator("#select-shown").click()
    check_page(page, "picker-search")
    page.locator("#save-services").click()
    page.wait_for_url(f"{server.base_url}/settings")
    check_page(page, "connection-needs-rule")

    visit(page, server, "/settings/routing")
    check_page(page, "routing-needs-rule")
    page.locator("#first-rule-submit").click()
    page.locator("#rule-name").fill("Broken")
    page.locator("#rule-field").fill("labels.team")
    page.locator("#rule-op").select_option("regex")
    page.locator("#rule-value").fill("a)")
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("#rule-services-error")).to_have_text(
        "Tick at least one service, or choose “Accept, don't page”."
    )
    expect(page.locator("#rule-value-error")).to_have_text(
        "That regular expression has a ')' that closes nothing."
    )
    check_page(page, "routing-refused")

    visit(page, server, "/settings")
    page.locator("tr.service").first.locator("button.send-test").click()
    page.wait_for_url(re.compile(r"/settings/events/"))
    # The event's page is built apart from these (event.html); its own tests hold it to axe.
    check_page(page, "event", axe=False)
    for path, name in (("/settings", "connection"), ("/settings/activity", "activity")):
        visit(page, server, path)
        check_page(page, name)
    for path in ELSEWHERE:
        answer = visit(page, server, path)
        if answer is not None and answer.status != 404:
            check_page(page, path.rsplit("/", 1)[1])

    visit(page, server, "/settings/keys")
    check_page(page, "keys")
    page.locator("#key-name").fill("Grafana")
    page.locator("#create-key-submit").click()
    expect(page.locator("#new-key-value")).to_have_value(re.compile(r"^pdc_"))
    check_page(page, "key-created")
    visit(page, server, "/settings/keys")
    page.locator("a.revoke").first.click()
    check_page(page, "key-revoke")
    page.locator("#confirm-revoke").click()
    page.wait_for_url(f"{server.base_url}/settings/keys")
    expect(page.locator("#keys p.flash-ok")).to_contain_text("Revoked the key")

    visit(page, server, "/settings")
    page.locator("a.disconnect").first.click()
    check_page(page, "disconnect")
    visit(page, server, "/settings")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("h1")).to_have_text("Signed out")
    check_page(page, "signed-out")
    visit(page, server, "/settings")
    check_page(page, "please-sign-in")


def test_a_favicon_and_the_navigation_by_keyboard(page: Page, server: Server) -> None:
    sign_in(page, server)
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon is not None
    answer = page.request.get(f"{server.base_url}{icon}")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    # Tab from the top: the skip link first, then the sections in order.
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#nav-connection")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#nav-routing")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.base_url}/settings/routing")
    expect(page.locator("#nav-routing")).to_have_attribute("aria-current", "page")
