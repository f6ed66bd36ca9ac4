"""How many sends a worker keeps waiting on PagerDuty at once, as deployed (the settings'
defaults). A send holds its place for the whole round trip to PagerDuty, which is tens of
milliseconds away, so a worker delivers at most its sends in flight over that time each second:
the defaults must keep enough of them going to one region, and the database pool must not grow
with them (the sends going at once share their statements)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import UUID

import httpx2

from app.composition import DISPATCH_POOL_MAX, dispatch_config_of, dispatch_pool_size
from app.dispatch.worker import Dispatcher
from tests.conftest import make_settings
from tests.dispatch.conftest import EVENTS_URL, Running, World
from tests.dispatch.test_isolation import HangingPagerDuty

HOST = httpx2.URL(EVENTS_URL).host
KEYS = 16
EVENTS_PER_KEY = 4


def test_the_database_pool_stays_small_whatever_the_concurrency() -> None:
    for concurrency in ("4", "64", "256"):
        config = dispatch_config_of(make_settings(PDCONNECT_DISPATCH_CONCURRENCY=concurrency))
        assert 4 <= dispatch_pool_size(config) <= DISPATCH_POOL_MAX


async def test_a_worker_as_deployed_keeps_three_quarters_of_its_sends_waiting_on_one_region(
    world: World, database_url: str
) -> None:
    deployed = dispatch_config_of(make_settings())
    assert (deployed.concurrency, deployed.max_in_flight_per_host) == (64, 48)
    # PagerDuty holds every answer until released; nothing times out meanwhile.
    config = replace(
        deployed,
        lease=timedelta(seconds=90),
        send_timeout=timedelta(seconds=60),
        poll_interval=timedelta(milliseconds=100),
    )
    pd = HangingPagerDuty(hanging_hosts={HOST})
    tenant = await world.tenant()
    events: list[UUID] = []
    for n in range(KEYS):
        service = await world.service(tenant, f"{n:032x}", limit=100_000)
        events += await world.send(tenant, service, None, n=EVENTS_PER_KEY)
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(pd.handle)) as http:
        dispatcher = Dispatcher(
            db=world.db, http=http, vault=world.vault, database_url=database_url, config=config
        )
        async with Running(dispatcher):
            # 64 events could go (4 per key, the cap per key); the region takes 48 at once.
            await world.wait_for(lambda: _in_flight(pd, config.max_in_flight_per_host))
            assert pd.most_in_flight[HOST] == config.max_in_flight_per_host
            pd.release.set()
            await world.wait_all(events, "delivered")
    assert pd.most_in_flight[HOST] == config.max_in_flight_per_host
    assert len(pd.received) == KEYS * EVENTS_PER_KEY


async def _in_flight(pd: HangingPagerDuty, n: int) -> bool:
    return pd.in_flight[HOST] >= n
