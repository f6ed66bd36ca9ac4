"""Isolated, end to end: one tenant's routing key hangs in the sandbox (it holds every request
unanswered) while that tenant keeps sending; another tenant's alerts are paged at once all the
while, and once the key answers again every one of the first tenant's events arrives, in order.

The hanging sends' deadline (a minute) outlasts every bounded wait here, so another tenant's
page within the wait shows it never waited for a slot the hanging key held."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from tests.dispatch.conftest import FAST
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher

CAPPED = replace(
    FAST,
    concurrency=4,
    max_in_flight_per_key=2,
    lease=timedelta(seconds=90),
    send_timeout=timedelta(seconds=60),
    timeouts_to_pause=1000,
)
PROMPTLY = 10.0  # seconds: far under the hanging sends' deadline, far over a prompt page


async def key_faults(stack: Stack, key: str, **faults: Any) -> None:
    url = f"{stack.sandbox.url}/_sandbox/faults/keys/{key}"
    response = await stack.sandbox.http.post(url, json=faults)
    assert response.status_code == 200, response.text


async def lift_faults(stack: Stack, key: str) -> None:
    await stack.sandbox.http.delete(f"{stack.sandbox.url}/_sandbox/faults/keys/{key}")


async def ids(answer: Any) -> list[str]:
    assert answer.status_code == 202, answer.text
    return [e["id"] for e in answer.json()["events"]]


async def test_a_hanging_key_leaves_another_tenant_paged_at_once(stack: Stack) -> None:
    a, b = await stack.tenant("Hanging"), await stack.tenant("Healthy")
    a_key, b_key = (await stack.v2_keys())[:2]
    await stack.connect_key(a, a_key, "Hanging target", limit=100_000)
    await stack.connect_key(b, b_key, "Healthy target")
    await key_faults(stack, a_key, hang=True)
    a_events: list[str] = []
    for i in range(6):
        a_events += await ids(await stack.alert(a, {"dedup_key": f"a{i}", "summary": f"a{i}"}))

    async def a_hangs() -> bool:
        hanging = await stack.count(
            """
            SELECT count(*) FROM delivery_attempts
            WHERE routing_key_hash = (SELECT routing_key_hash FROM pd_services
                                      WHERE tenant_id = CAST(:t AS uuid))
              AND finished_at IS NULL
            """,
            t=a["id"],
        )
        return hanging == 2

    async with dispatcher(stack, CAPPED):
        await stack.wait_for(a_hangs)
        for step in range(4):
            # A keeps sending (an alert's next step, and a new one) while its key hangs.
            a_events += await ids(
                await stack.alert(a, {"dedup_key": "a0", "status": "acknowledged"})
                if step == 0
                else await stack.alert(a, {"dedup_key": f"n{step}", "summary": f"n{step}"})
            )
            [page] = await ids(await stack.alert(b, {"dedup_key": f"b{step}", "summary": "b"}))

            async def paged(page: str = page) -> bool:
                return bool((await stack.event(b, page))["status"] == "delivered")

            await stack.wait_for(paged, within=PROMPTLY)
        assert await a_hangs()  # still hanging, still no more than its two sends
        await lift_faults(stack, a_key)

        async def a_delivered() -> bool:
            states = [(await stack.event(a, e))["status"] for e in a_events]
            return states == ["delivered"] * len(a_events)

        await stack.wait_for(a_delivered, within=60)
    steps = [
        x["event_action"]
        for x in await stack.arrivals(routing_key=a_key)
        if x["status"] == 202 and x["dedup_key"] == "a0"
    ]
    assert steps == ["trigger", "acknowledge"]
