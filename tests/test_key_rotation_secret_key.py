"""Rotating SECRET_KEY with the old one kept as SECRET_KEY_PREVIOUS: ingest keys, sessions and
sign-in links made under the old key keep working, and move to the new key as they are used;
without the previous key they stop working."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx2
import pytest
from databases import Database

from app.config.values import ConfigError
from app.deps import Deps, new_http_client
from app.main import create_app
from app.tenants.links import redeem_login_link
from tests.conftest import BASE_URL, FakeClock, admin_headers, make_settings
from tests.installations.conftest import signed_in

OLD = "o" * 48
NEW = "n" * 48
SESSION_COOKIE = "pdconnect_session"


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    client = new_http_client()
    try:
        yield client
    finally:
        await client.aclose()


def deps_with(db: Database, clock: FakeClock, http: httpx2.AsyncClient, **env: str) -> Deps:
    return Deps(config=make_settings(**env), db=db, http=http, clock=clock)


def client_of(deps: Deps) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    return httpx2.AsyncClient(transport=transport, base_url=BASE_URL)


async def new_tenant_keys(deps: Deps) -> tuple[str, str]:
    """A tenant made under `deps`'s SECRET_KEY, with two ingest keys."""
    async with client_of(deps) as api:
        tenant = await api.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
        assert tenant.status_code == 201
        other = await api.post(
            f"/admin/v1/tenants/{tenant.json()['id']}/ingest-keys", headers=admin_headers()
        )
        assert other.status_code == 201
    return tenant.json()["ingest_key"], other.json()["ingest_key"]


async def lists_events(deps: Deps, key: str) -> int:
    async with client_of(deps) as api:
        response = await api.get("/v1/events", headers={"Authorization": f"Bearer {key}"})
    return response.status_code


# 0: the plain lookup; 50: the lookup that spends the key's rate limit in the same statement.
@pytest.mark.parametrize("rate_limit", ["0", "50"])
async def test_ingest_keys_hashed_under_the_previous_key_authenticate_and_move_over(
    db: Database, clock: FakeClock, http: httpx2.AsyncClient, rate_limit: str
) -> None:
    before = deps_with(db, clock, http, SECRET_KEY=OLD)
    used, unused = await new_tenant_keys(before)
    limit = {"PDCONNECT_INGEST_RATE_LIMIT": rate_limit}
    rotating = deps_with(db, clock, http, SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=OLD, **limit)
    after = deps_with(db, clock, http, SECRET_KEY=NEW, **limit)

    assert await lists_events(rotating, used) == 200
    assert await lists_events(rotating, used) == 200, "and again, now under the new hash"
    # Used during the grace period: re-hashed, so the previous key is no longer needed.
    assert await lists_events(after, used) == 200
    # Never used during the grace period: it was not moved over, and stops working.
    assert await lists_events(after, unused) == 401
    assert await lists_events(rotating, unused) == 200
    assert await lists_events(rotating, "pdc_" + "x" * 32) == 401


async def test_without_the_previous_key_ingest_keys_stop_working(
    db: Database, clock: FakeClock, http: httpx2.AsyncClient
) -> None:
    before = deps_with(db, clock, http, SECRET_KEY=OLD)
    key, _ = await new_tenant_keys(before)
    assert await lists_events(before, key) == 200
    assert await lists_events(deps_with(db, clock, http, SECRET_KEY=NEW), key) == 401


async def test_a_revoked_key_is_not_brought_back_by_the_previous_key(
    db: Database, clock: FakeClock, http: httpx2.AsyncClient
) -> None:
    before = deps_with(db, clock, http, SECRET_KEY=OLD)
    key, _ = await new_tenant_keys(before)
    await db.execute("UPDATE ingest_keys SET revoked_at = now()")
    rotating = deps_with(db, clock, http, SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=OLD)
    assert await lists_events(rotating, key) == 401


async def settings_page(deps: Deps, cookie: str) -> httpx2.Response:
    async with client_of(deps) as browser:
        return await browser.get("/settings", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})


async def test_sessions_signed_with_the_previous_key_load_and_are_signed_again(
    db: Database, clock: FakeClock, http: httpx2.AsyncClient
) -> None:
    before = deps_with(db, clock, http, SECRET_KEY=OLD)
    browser, _ = await signed_in(before)
    old_cookie = browser.cookies[SESSION_COOKIE]
    await browser.aclose()
    rotating = deps_with(db, clock, http, SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=OLD)
    after = deps_with(db, clock, http, SECRET_KEY=NEW)

    # Without the previous key the session is gone: the test can fail.
    assert (await settings_page(after, old_cookie)).status_code == 401

    page = await settings_page(rotating, old_cookie)
    assert page.status_code == 200
    new_cookie = page.cookies.get(SESSION_COOKIE)
    assert new_cookie is not None, "signed again on this response"
    assert new_cookie != old_cookie
    # Signed with the new key: it opens without the previous one.
    assert (await settings_page(after, new_cookie)).status_code == 200
    # A session already under the new key is not signed again for nothing.
    again = await settings_page(rotating, new_cookie)
    assert again.status_code == 200
    assert SESSION_COOKIE not in again.cookies


async def test_sign_in_links_signed_with_the_previous_key_still_open(
    db: Database, clock: FakeClock, http: httpx2.AsyncClient
) -> None:
    before = deps_with(db, clock, http, SECRET_KEY=OLD)
    async with client_of(before) as api:
        tenant = await api.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
        links = [
            await api.post(
                f"/admin/v1/tenants/{tenant.json()['id']}/login-links", headers=admin_headers()
            )
            for _ in range(2)
        ]
    first, second = (parse_qs(urlsplit(link.json()["url"]).query)["token"][0] for link in links)
    rotating = deps_with(db, clock, http, SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=OLD)
    after = deps_with(db, clock, http, SECRET_KEY=NEW)

    assert await redeem_login_link(db, after.link_signer, token=first, now=clock()) is None
    opened = await redeem_login_link(db, rotating.link_signer, token=first, now=clock())
    assert opened == UUID(tenant.json()["id"])
    # New links are signed with the new key alone.
    assert rotating.link_signer.sign(UUID(int=1)) == after.link_signer.sign(UUID(int=1))
    assert await redeem_login_link(db, after.link_signer, token=second, now=clock()) is None


@pytest.mark.parametrize(
    ("previous", "message"),
    [("short", "at least 32 characters"), (NEW, "the same as SECRET_KEY")],
)
def test_a_bad_previous_key_stops_start_up_naming_it(previous: str, message: str) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY_PREVIOUS") as raised:
        make_settings(SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=previous)
    assert message in str(raised.value)
    assert NEW not in str(raised.value), "a setting's error never shows its value"


def test_the_previous_key_stays_out_of_the_settings_repr() -> None:
    settings = make_settings(SECRET_KEY=NEW, SECRET_KEY_PREVIOUS=OLD)
    assert OLD not in repr(settings)
    assert settings.secret_keys == (NEW, OLD)
