"""Browser sessions end when they should: a sign-in link asks before it replaces a live
session, sign-out and an operator's "sign out everywhere" end sessions on the server, and a
deleted tenant's browser is signed out rather than answered with errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx2
import pytest
from databases import Database
from starlette.routing import Route

from app.deps import Deps
from app.main import create_app
from app.web.session import SESSION_COOKIE
from tests.conftest import BASE_URL, FakeClock, admin_headers
from tests.tenants.test_admin_api import create_tenant
from tests.tenants.test_signin import new_link

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK_TOKEN = re.compile(r'name="token" value="([^"]+)"')


@pytest.fixture
async def browsers(deps: Deps) -> AsyncIterator[list[httpx2.AsyncClient]]:
    """Four browsers of one app, each with its own cookie jar."""
    app = create_app(deps)
    opened: list[httpx2.AsyncClient] = []
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    for _ in range(4):
        opened.append(httpx2.AsyncClient(transport=transport, base_url=BASE_URL))
    try:
        yield opened
    finally:
        for http in opened:
            await http.aclose()


async def signed_in(http: httpx2.AsyncClient, tenant_id: str) -> str:
    """Sign `http` in to the tenant; returns the settings page's CSRF token."""
    opened = await http.get(await new_link(http, tenant_id))
    assert opened.status_code == 303, opened.text
    return await csrf_of(http)


async def csrf_of(http: httpx2.AsyncClient) -> str:
    page = await http.get("/settings")
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match is not None
    return match.group(1)


async def signed_in_to(http: httpx2.AsyncClient) -> str | None:
    page = await http.get("/settings")
    if page.status_code == 401:
        assert "Please sign in" in page.text
        return None
    assert page.status_code == 200, page.text
    match = re.search(r"<h1>PagerDuty for (.+?)</h1>", page.text)
    assert match is not None
    return match.group(1)


def session_cookie(http: httpx2.AsyncClient) -> str:
    value = http.cookies.get(SESSION_COOKIE)
    assert value is not None
    return value


def replay(http: httpx2.AsyncClient, cookie: str) -> None:
    """Make `http` send exactly this session cookie, as a browser that kept it would."""
    http.cookies.clear()
    http.cookies.set(SESSION_COOKIE, cookie)


# A sign-in link does not replace a live session without a confirming POST.


async def test_a_link_to_another_tenant_asks_before_switching(
    browsers: list[httpx2.AsyncClient], db: Database
) -> None:
    victim = browsers[0]
    mine = await create_tenant(victim, "Victim Corp")
    theirs = await create_tenant(victim, "Attacker Ltd")
    await signed_in(victim, mine["id"])
    link = await new_link(victim, theirs["id"])

    # The link arrives from anywhere (another site's <a>, an email): opening it only asks.
    asked = await victim.get(link, headers={"sec-fetch-site": "cross-site"})
    assert asked.status_code == 200
    text = re.sub(r"<[^>]+>", "", asked.text)
    assert "You are signed in to Victim Corp. Switch to Attacker Ltd?" in text
    assert await signed_in_to(victim) == "Victim Corp"
    used = await db.fetch_val(
        "SELECT count(*) FROM login_links WHERE tenant_id = :t AND used_at IS NOT NULL",
        {"t": theirs["id"]},
    )
    assert used == 0, "asking must not spend the link"

    # Another site can post the link's token, but not this session's CSRF token.
    token_match = LINK_TOKEN.search(asked.text)
    csrf_match = CSRF.search(asked.text)
    assert token_match is not None
    assert csrf_match is not None
    token = token_match.group(1)
    for forged in ({"token": token}, {"token": token, "csrf_token": "forged"}):
        refused = await victim.post("/auth/link", data=forged)
        assert refused.status_code == 403
        assert await signed_in_to(victim) == "Victim Corp"

    # The person at the keyboard confirms: now, and only now, the link is used.
    before = session_cookie(victim)
    confirmed = await victim.post(
        "/auth/link", data={"token": token, "csrf_token": csrf_match.group(1)}
    )
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/settings"
    assert await signed_in_to(victim) == "Attacker Ltd"
    again = await victim.post(
        "/auth/link", data={"token": token, "csrf_token": await csrf_of(victim)}
    )
    assert again.status_code == 400, "the link works once"

    # Switching ended the session it replaced: its cookie opens nothing any more.
    old = browsers[1]
    replay(old, before)
    assert await signed_in_to(old) is None


async def test_staying_leaves_the_session_and_the_link_unspent(
    browsers: list[httpx2.AsyncClient],
) -> None:
    first, second = browsers[0], browsers[1]
    mine = await create_tenant(first, "Mine")
    other = await create_tenant(first, "Other")
    await signed_in(first, mine["id"])
    link = await new_link(first, other["id"])
    asked = await first.get(link)
    assert asked.status_code == 200
    assert 'href="/settings"' in asked.text  # "Stay in Mine"
    assert await signed_in_to(first) == "Mine"
    # Not spent: the person it was meant for can still open it.
    opened = await second.get(link)
    assert opened.status_code == 303
    assert await signed_in_to(second) == "Other"


async def test_a_link_to_the_tenant_already_signed_in_is_spent_without_asking(
    browsers: list[httpx2.AsyncClient],
) -> None:
    http = browsers[0]
    tenant = await create_tenant(http, "Same")
    csrf = await signed_in(http, tenant["id"])
    link = await new_link(http, tenant["id"])
    opened = await http.get(link)
    assert opened.status_code == 303
    assert await signed_in_to(http) == "Same"
    # The session is the one it was, forms and all.
    assert await csrf_of(http) == csrf
    assert (await browsers[1].get(link)).status_code == 400


async def test_a_link_opened_with_no_session_signs_in_at_once(
    browsers: list[httpx2.AsyncClient],
) -> None:
    http = browsers[0]
    tenant = await create_tenant(http, "Fresh")
    opened = await http.get(await new_link(http, tenant["id"]))
    assert opened.status_code == 303
    assert await signed_in_to(http) == "Fresh"


async def test_a_confirmation_for_a_link_that_expired_meanwhile_signs_in_nowhere(
    browsers: list[httpx2.AsyncClient], clock: FakeClock
) -> None:
    http = browsers[0]
    mine = await create_tenant(http, "Mine")
    other = await create_tenant(http, "Other")
    await signed_in(http, mine["id"])
    asked = await http.get(await new_link(http, other["id"]))
    token_match = LINK_TOKEN.search(asked.text)
    csrf_match = CSRF.search(asked.text)
    assert token_match is not None
    assert csrf_match is not None
    clock.advance(minutes=16)
    late = await http.post(
        "/auth/link", data={"token": token_match.group(1), "csrf_token": csrf_match.group(1)}
    )
    assert late.status_code == 400
    assert "cannot be used" in late.text
    assert await signed_in_to(http) == "Mine"


async def test_another_sites_form_cannot_replace_the_session_cookie(
    browsers: list[httpx2.AsyncClient],
) -> None:
    """A cross-site POST carries no SameSite=Lax cookie. If its answer stored a session (a
    page's CSRF token is enough), the browser would swap its real session for that one, and
    the next sign-in link would find no session to ask about: login CSRF in two steps."""
    victim, other_site = browsers[0], browsers[1]
    mine = await create_tenant(victim, "Victim Corp")
    await signed_in(victim, mine["id"])
    # What the browser sends for another site's forms: no cookie at all.
    for method, path, data in (
        ("POST", "/auth/signout", {}),
        ("POST", "/auth/link", {"token": "x"}),
        ("POST", "/settings/severity", {"table": ""}),
        ("GET", "/settings", None),
        ("GET", "/auth/link?token=forged", None),
    ):
        answer = await other_site.request(method, path, data=data)
        assert answer.status_code in (200, 400, 401, 403), (path, answer.status_code)
        assert "set-cookie" not in answer.headers, (path, answer.headers["set-cookie"])
    assert await signed_in_to(victim) == "Victim Corp"


# Sign-out ends the session on the server.


async def test_a_signed_out_cookie_no_longer_works(browsers: list[httpx2.AsyncClient]) -> None:
    http, copier = browsers[0], browsers[1]
    tenant = await create_tenant(http, "Acme")
    csrf = await signed_in(http, tenant["id"])
    kept = session_cookie(http)

    out = await http.post("/auth/signout", data={"csrf_token": csrf})
    assert out.status_code == 200
    assert "Signed out" in out.text
    assert await signed_in_to(http) is None

    # Someone who copied the cookie before the sign-out (or a browser that did not drop it)
    # holds a validly signed cookie: it signs in nowhere, for pages and forms alike.
    replay(copier, kept)
    assert await signed_in_to(copier) is None
    replay(copier, kept)
    posted = await copier.post("/settings/severity", data={"csrf_token": csrf, "table": ""})
    assert posted.status_code == 401
    assert "Please sign in" in posted.text


async def test_signing_out_without_a_session_just_says_so(
    browsers: list[httpx2.AsyncClient],
) -> None:
    out = await browsers[0].post("/auth/signout", data={})
    assert out.status_code == 200
    assert "Signed out" in out.text


async def test_signing_out_one_browser_leaves_the_others(
    browsers: list[httpx2.AsyncClient],
) -> None:
    first, second = browsers[0], browsers[1]
    tenant = await create_tenant(first, "Acme")
    csrf = await signed_in(first, tenant["id"])
    await signed_in(second, tenant["id"])
    await first.post("/auth/signout", data={"csrf_token": csrf})
    assert await signed_in_to(first) is None
    assert await signed_in_to(second) == "Acme"


async def expires_in(db: Database, tenant_id: str) -> list[float]:
    """Seconds from now until each of the tenant's sessions ends, soonest first."""
    rows = await db.fetch_all(
        """
        SELECT EXTRACT(EPOCH FROM expires_at - now()) AS left FROM browser_sessions
        WHERE tenant_id = :t ORDER BY expires_at
        """,
        {"t": tenant_id},
    )
    return [float(r._mapping["left"]) for r in rows]


async def test_a_session_ends_after_twelve_idle_hours_and_lives_while_used(
    browsers: list[httpx2.AsyncClient], db: Database
) -> None:
    """On PostgreSQL's clock (as the cookie's age is on the wall clock): the injected clock of
    the product moves by days in other tests without signing their browsers out."""
    used, idle = browsers[0], browsers[1]
    tenant = await create_tenant(used, "Acme")
    await signed_in(used, tenant["id"])
    await signed_in(idle, tenant["id"])
    twelve_hours = 12 * 3600
    assert all(
        twelve_hours - 60 < left <= twelve_hours for left in await expires_in(db, tenant["id"])
    )

    # Both have been left alone for hours: one is used again, one is not.
    await db.execute(
        "UPDATE browser_sessions SET expires_at = now() + interval '1 hour' WHERE tenant_id = :t",
        {"t": tenant["id"]},
    )
    assert await signed_in_to(used) == "Acme"
    soonest, latest = await expires_in(db, tenant["id"])
    assert soonest <= 3600
    assert latest > twelve_hours - 60, "using a session pushes its end back to 12 hours"
    # Used again at once: no write for that (the end is at most minutes from 12 hours away).
    before = await db.fetch_val("SELECT max(expires_at) FROM browser_sessions")
    assert await signed_in_to(used) == "Acme"
    assert await db.fetch_val("SELECT max(expires_at) FROM browser_sessions") == before

    await db.execute(
        "UPDATE browser_sessions SET expires_at = now() - interval '1 second' "
        "WHERE expires_at < now() + interval '2 hours'"
    )
    assert await signed_in_to(idle) is None
    assert await signed_in_to(used) == "Acme"


async def test_the_products_clock_moving_on_does_not_end_a_session(
    browsers: list[httpx2.AsyncClient], clock: FakeClock
) -> None:
    http = browsers[0]
    tenant = await create_tenant(http, "Acme")
    await signed_in(http, tenant["id"])
    clock.advance(days=11)
    assert await signed_in_to(http) == "Acme"


# An operator signs a tenant out everywhere.


async def test_sign_out_everywhere_ends_every_session_of_the_tenant(
    browsers: list[httpx2.AsyncClient], db: Database
) -> None:
    a1, a2, b = browsers[0], browsers[1], browsers[2]
    acme = await create_tenant(a1, "Acme")
    globex = await create_tenant(a1, "Globex")
    await signed_in(a1, acme["id"])
    await signed_in(a2, acme["id"])
    await signed_in(b, globex["id"])
    pending = await new_link(a1, acme["id"])

    revoked = await a1.post(
        f"/admin/v1/tenants/{acme['id']}/sessions/revoke", headers=admin_headers()
    )
    assert revoked.status_code == 204
    assert revoked.content == b""

    assert await signed_in_to(a1) is None
    assert await signed_in_to(a2) is None
    assert await signed_in_to(b) == "Globex"
    # A link handed out before is void too (a leaked one would open a session right after);
    # a new one works.
    assert (await browsers[3].get(pending)).status_code == 400
    assert (await browsers[3].get(await new_link(a1, acme["id"]))).status_code == 303
    assert await signed_in_to(browsers[3]) == "Acme"

    audit = await db.fetch_one(
        "SELECT actor, detail FROM audit_log WHERE tenant_id = :t AND action = 'sessions.revoked'",
        {"t": acme["id"]},
    )
    assert audit is not None
    assert audit._mapping["actor"] == "operator"
    assert '"sessions": 2' in str(audit._mapping["detail"])


async def test_sign_out_everywhere_needs_the_admin_token_and_a_tenant(
    browsers: list[httpx2.AsyncClient],
) -> None:
    http = browsers[0]
    tenant = await create_tenant(http, "Acme")
    await signed_in(http, tenant["id"])
    path = f"/admin/v1/tenants/{tenant['id']}/sessions/revoke"
    assert (await http.post(path)).status_code == 401
    assert (await http.post(path, headers={"authorization": "Bearer wrong"})).status_code == 401
    assert await signed_in_to(http) == "Acme"
    unknown = await http.post(
        f"/admin/v1/tenants/{uuid4()}/sessions/revoke", headers=admin_headers()
    )
    assert unknown.status_code == 404
    malformed = await http.post("/admin/v1/tenants/nope/sessions/revoke", headers=admin_headers())
    assert malformed.status_code == 404


# A deleted tenant's browser is signed out, on every page and form.


def browser_routes(deps: Deps) -> list[tuple[str, str]]:
    """Every page and form a signed-in browser uses, with ids filled in."""
    out: list[tuple[str, str]] = []
    for route in create_app(deps).routes:
        if not isinstance(route, Route):
            continue
        if not route.path.startswith(("/settings", "/pagerduty/connect")):
            continue
        path = re.sub(r"\{[a-z_]+\}", str(uuid4()), route.path)
        out.extend((method, path) for method in sorted(route.methods or ()) if method != "HEAD")
    return out


async def test_a_deleted_tenants_session_is_signed_out_everywhere(
    browsers: list[httpx2.AsyncClient], deps: Deps
) -> None:
    http = browsers[0]
    tenant = await create_tenant(http, "Gone Soon")
    csrf = await signed_in(http, tenant["id"])
    cookie = session_cookie(http)
    deleted = await http.delete(f"/admin/v1/tenants/{tenant['id']}", headers=admin_headers())
    assert deleted.status_code == 204

    routes = browser_routes(deps)
    assert ("POST", "/settings/services/manual") in routes
    assert ("POST", "/settings/severity") in (routes)
    forms: dict[str, dict[str, Any]] = {
        "/settings/services/manual": {"name": "x", "routing_key": "k" * 32, "api": "v2"},
        "/settings/severity": {"table": "p1 = critical", "default": "error"},
        "/settings/routes": {"name": "r", "field": "", "op": "equals", "value": ""},
    }
    for method, path in routes:
        # The browser still sends the cookie it had: the server is what must forget it.
        replay(http, cookie)
        data = {"csrf_token": csrf, **forms.get(path, {})}
        response = await http.request(method, path, data=data if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.status_code, response.text)
        assert "Please sign in" in response.text, (method, path)
