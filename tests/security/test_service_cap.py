"""The cap on services per tenant (PDCONNECT_MAX_SERVICES_PER_TENANT) on a Simple Install, whose
keys PagerDuty sends all at once: over the cap, none of them is kept, and the page says why."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from databases import Database

from app.deps import Deps, new_http_client
from tests.conftest import FakeClock, make_settings
from tests.installations.conftest import flashes, signed_in
from tests.installations.test_simple_install import KEY_A, KEY_B, KEY_C, config_of, deliver
from tests.installations.test_simple_install import start_install as click_install
from tests.live_sandbox import Sandbox, app_settings
from tests.live_sandbox import sandbox as sandbox  # a fixture, shared


@pytest.fixture
async def deps(db: Database, clock: FakeClock, sandbox: Sandbox) -> AsyncIterator[Deps]:
    settings = make_settings(
        **app_settings(sandbox.url),
        PDCONNECT_MAX_SERVICES_PER_TENANT="2",
    )
    http = new_http_client()
    try:
        yield Deps(config=settings, db=db, http=http, clock=clock)
    finally:
        await http.aclose()


def key(integration_key: str, n: int) -> dict[str, str]:
    return {
        "integration_key": integration_key,
        "name": f"S{n}",
        "id": f"PD0000{n}",
        "type": "service",
    }


async def test_an_install_over_the_cap_keeps_none_of_its_keys(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _ = await signed_in(deps)
    _, state = await click_install(http, sandbox)
    await deliver(http, state, config_of(key(KEY_A, 1), key(KEY_B, 2), key(KEY_C, 3)))
    page = await flashes(http)
    assert "a tenant may connect at most 2 (PDCONNECT_MAX_SERVICES_PER_TENANT)" in page
    assert "Nothing was saved" in page
    assert await db.fetch_val("SELECT count(*) FROM pd_services") == 0

    # Within the cap, the same install goes through.
    _, state = await click_install(http, sandbox)
    await deliver(http, state, config_of(key(KEY_A, 1), key(KEY_C, 3)))
    assert "Connected 2 integration keys" in await flashes(http)
    assert await db.fetch_val("SELECT count(*) FROM pd_services") == 2
