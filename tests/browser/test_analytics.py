"""The analytics page in Chromium, as a tenant admin meets it with a day of history: the
figures, both SVG charts with their tables, the window switch by links, a refused target shown
beside its field and a saved one; at 1280 and 390 px with no sideways scroll and no axe-core
violation. Screenshots go to tests/browser/artifacts/ (ignored by git)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from playwright.sync_api import Page, expect

from app.analytics.rollup import fold
from app.analytics.store import Target, folded_to
from app.analytics.targets import save_targets
from app.db.embedded import EMBEDDED_DATABASE
from app.db.pool import PooledDatabase
from tests.analytics.test_figures import scripted
from tests.browser.conftest import Server, _start_server, _stop
from tests.browser.test_settings_pages import check_page, sign_in


@pytest.fixture
def served() -> Iterator[tuple[Server, Path]]:
    """`pdconnect serve` as a new user runs it, and where its embedded PostgreSQL keeps its
    socket (the test writes a history into it, as the product would have over a day)."""
    data_dir = Path(tempfile.mkdtemp(prefix="pdc-ba-", dir="/tmp"))
    try:
        server = _start_server(data_dir)
        try:
            yield server, data_dir
        finally:
            _stop(server.process)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def _write_history(data_dir: Path) -> None:
    url = f"postgresql://postgres@/{EMBEDDED_DATABASE}?host={data_dir / 'postgres'}"
    db = PooledDatabase(url)
    await db.connect()
    try:
        # The server's first fold (at its start, of an empty history) must be done, or it could
        # count the history below a second time.
        for _ in range(300):
            if await folded_to(db) > datetime(2000, 1, 1, tzinfo=UTC):
                break
            await asyncio.sleep(0.1)
        tenant_id = await db.fetch_val("SELECT id FROM tenants ORDER BY created_at LIMIT 1")
        assert isinstance(tenant_id, UUID)
        await scripted(db, tenant_id)
        # The history is written with the times it would have had, behind the server's own
        # folds so far (of nothing: the tenant had no traffic): fold it as a first run would.
        await db.execute("UPDATE analytics_watermark SET folded_to = '-infinity'")
        await save_targets(db, tenant_id, [Target("critical", 180, 900)], actor="test")
        await fold(db, lag=timedelta(minutes=1))
    finally:
        await db.disconnect()


def test_the_analytics_page(page: Page, served: tuple[Server, Path]) -> None:
    server, data_dir = served
    # Playwright's sync API keeps an event loop in this thread: the history is written in
    # another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _write_history(data_dir)).result()
    sign_in(page, server)
    page.locator("#nav-analytics").click()
    page.wait_for_url(f"{server.base_url}/settings/analytics")
    expect(page.locator("#nav-analytics")).to_have_attribute("aria-current", "page")
    expect(page.locator("#fig-alerts")).to_have_text("12")
    expect(page.locator("#fig-mtta")).to_have_text("3 min")
    expect(page.locator("#fig-mttr")).to_have_text("15 min")
    expect(page.locator("svg#alerts-chart rect.bar")).to_have_count(24)
    expect(page.locator("svg#ttp-chart")).to_be_visible()
    expect(page.locator("tr.analytics-service")).to_have_count(3)
    expect(page.locator("tr.breach")).to_have_count(5)
    page.locator("#alerts-chart ~ details summary").click()
    expect(page.locator("#alerts-table tbody tr")).to_have_count(24)
    check_page(page, "analytics-24h")

    page.locator("#window-7d").click()
    page.wait_for_url("**/settings/analytics?window=7d")
    expect(page.locator("svg#alerts-chart rect.bar")).to_have_count(7)
    expect(page.locator("#window-7d")).to_have_attribute("aria-current", "page")
    check_page(page, "analytics-7d")

    page.locator("#acknowledge_error").fill("soon")
    page.locator("#save-targets").click()
    expect(page.locator("#acknowledge_error-error")).to_contain_text("whole number of minutes")
    expect(page.locator("#acknowledge_error")).to_have_value("soon")
    check_page(page, "analytics-refused-target")

    page.locator("#acknowledge_error").fill("10")
    page.locator("#save-targets").click()
    page.wait_for_url("**/settings/analytics?window=7d#targets")
    expect(page.get_by_text("Targets saved.")).to_be_visible()
    expect(page.locator("#acknowledge_error")).to_have_value("10")
    expect(page.locator("#acknowledge_critical")).to_have_value("3")
