"""Login CSRF, in Chromium: a sign-in link that another site sends a signed-in admin's browser
to does not switch tenants by itself. The page asks; a form another site posts is refused; only
the admin's own click switches. And a signed-out session's cookie, kept and sent again, opens
nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.conftest import Server, _start_server, _stop

ATTACKER_SITE = "http://attacker.example"
# The server and its sandbox are on 127.0.0.1: never through a proxy from the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def served() -> Iterator[tuple[Server, str]]:
    """A fresh `pdconnect serve`, and the admin token it generated for itself."""
    data_dir = Path(tempfile.mkdtemp(prefix="pdc-b-", dir="/tmp"))
    try:
        server = _start_server(data_dir)
        try:
            secrets = (data_dir / "sandbox-secrets.env").read_text().splitlines()
            token = next(line.split("=", 1)[1] for line in secrets if line.startswith("ADMIN_"))
            yield server, token
        finally:
            _stop(server.process)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def admin(server: Server, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - our own server on loopback
        f"{server.base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with _LOCAL.open(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
    return answer


def attacker_page(link: str, token: str, base_url: str) -> str:
    """What another site shows the victim: a link to its own tenant's sign-in, and a form that
    posts the confirmation by itself."""
    return f"""<!doctype html><html><body>
<a id="prize" href="{link}">You won a prize</a>
<form id="forged" method="post" action="{base_url}/auth/link">
<input type="hidden" name="token" value="{token}"><button id="send">Go</button></form>
</body></html>"""


def test_a_sign_in_link_from_another_site_asks_before_switching(
    browser: Browser, page: Page, served: tuple[Server, str]
) -> None:
    server, token = served
    theirs = admin(server, token, "/admin/v1/tenants", {"name": "Attacker Ltd"})
    link = admin(server, token, f"/admin/v1/tenants/{theirs['id']}/login-links", {})["url"]
    link_token = link.split("token=", 1)[1]

    page.goto(server.sign_in_url)
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("h1")).to_have_text("PagerDuty for Demo")

    def serve_attacker(route: Route) -> None:
        route.fulfill(
            status=200,
            content_type="text/html",
            body=attacker_page(link, link_token, server.base_url),
        )

    page.context.route(f"{ATTACKER_SITE}/**", serve_attacker)

    # Another site posts the confirmation itself: it cannot know the session's CSRF token.
    page.goto(f"{ATTACKER_SITE}/")
    page.locator("#send").click()
    page.wait_for_url(f"{server.base_url}/auth/link")
    expect(page.locator("h1")).to_have_text("Something is not right")
    page.goto(f"{server.base_url}/settings")
    expect(page.locator("h1")).to_have_text("PagerDuty for Demo")

    # The victim follows the other site's link: asked, not switched.
    page.goto(f"{ATTACKER_SITE}/")
    page.locator("#prize").click()
    page.wait_for_url(f"{server.base_url}/auth/link?**")
    expect(page.locator("h1")).to_have_text("Switch to Attacker Ltd?")
    expect(page.locator("#message")).to_have_text(
        "You are signed in to Demo. Switch to Attacker Ltd?"
    )
    page.locator("#stay").click()
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("h1")).to_have_text("PagerDuty for Demo")

    # Opened again and confirmed by the person at the keyboard, the same link switches.
    page.goto(link)
    page.locator("#confirm-switch").click()
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("h1")).to_have_text("PagerDuty for Attacker Ltd")


def test_a_signed_out_cookie_opens_nothing(
    browser: Browser, page: Page, served: tuple[Server, str]
) -> None:
    server, _ = served
    page.goto(server.sign_in_url)
    page.wait_for_url(f"{server.base_url}/settings")
    kept = page.context.cookies()
    assert any(c["name"] == "pdconnect_session" for c in kept)

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("h1")).to_have_text("Signed out")

    # A copy of the cookie taken before signing out (another tab, a stolen copy) is refused.
    other = browser.new_context()
    try:
        other.add_cookies(kept)  # type: ignore[arg-type]
        tab = other.new_page()
        tab.set_default_timeout(15_000)
        response = tab.goto(f"{server.base_url}/settings")
        assert response is not None
        assert response.status == 401
        expect(tab.locator("h1")).to_have_text("Please sign in")
    finally:
        other.close()
