"""Fenced, end to end: the sandbox takes a key's events and then trickles each answer out a
byte at a time (every byte within the HTTP client's read timeout) for far longer than the
dispatcher's lease. Each send is cut off before its lease ends and tried again; PagerDuty may
see a trigger twice, never a trigger after its acknowledge or resolve, and every incident ends
resolved."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.dispatch.conftest import FAST
from tests.e2e.conftest import Stack
from tests.e2e.test_delivery import dispatcher, incident
from tests.e2e.test_isolation import ids, key_faults, lift_faults

STEPS = ("trigger", "acknowledge", "resolve")
# Three times the lease, every byte a tenth of a second apart.
TRICKLE = {"seconds": 3.6, "every_ms": 100}
SHORT_LEASE = replace(FAST, lease=timedelta(seconds=1.2), send_timeout=timedelta(seconds=30))


async def test_a_trickled_answer_outliving_the_lease_never_reorders_an_alert(
    stack: Stack,
) -> None:
    tenant = await stack.tenant("Acme")
    key = (await stack.v2_keys())[0]
    await stack.connect_key(tenant, key, "Checkout", limit=100_000)
    await key_faults(stack, key, trickle=TRICKLE)
    events: list[str] = []
    for chain in range(3):
        for status in ("firing", "acknowledged", "resolved"):
            body = {"dedup_key": f"d{chain}", "summary": f"d{chain}", "status": status}
            events += await ids(await stack.alert(tenant, body))

    async def triggers_trickling() -> bool:
        trickled = [a for a in await stack.arrivals(routing_key=key) if a["fault"] == "trickle"]
        return len(trickled) >= 3

    async with dispatcher(stack, SHORT_LEASE):
        await stack.wait_for(triggers_trickling)
        # The key answers promptly again; the trickling answers are still on their way.
        await lift_faults(stack, key)

        async def delivered() -> bool:
            states = [(await stack.event(tenant, e))["status"] for e in events]
            return states == ["delivered"] * len(events)

        await stack.wait_for(delivered)
    arrivals = [a for a in await stack.arrivals(routing_key=key) if a["status"] == 202]
    for chain in range(3):
        steps = [STEPS.index(a["event_action"]) for a in arrivals if a["dedup_key"] == f"d{chain}"]
        assert steps == sorted(steps), f"d{chain} arrived out of order: {steps}"
        assert set(steps) == {0, 1, 2}
        found = await incident(stack, f"d{chain}")
        assert found is not None
        assert found["status"] == "resolved"
    # Each trigger whose answer trickled was cut off before its lease ran out, then sent again.
    for trigger in events[::3]:
        attempts = (await stack.event(tenant, trigger))["delivery_attempts"]
        assert [a["outcome"] for a in attempts] == ["retry", "delivered"]
