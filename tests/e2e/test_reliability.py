"""The dispatch promises under stress: nothing lost when a worker is killed, order kept per
alert through failures and 429 bursts with two workers, the budget held in every 60-second
window, and one tenant's storm not delaying another tenant's page."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tests.e2e.conftest import Stack, worker_env
from tests.e2e.test_delivery import dispatcher

StartWorker = Callable[[dict[str, str]], subprocess.Popen[bytes]]
UNLIMITED = 1_000_000


async def unlimited_sandbox(stack: Stack) -> None:
    response = await stack.sandbox.http.post(
        f"{stack.sandbox.url}/_sandbox/control", json={"default_rate_limit": UNLIMITED}
    )
    assert response.status_code == 200


async def send_batches(stack: Stack, tenant: dict[str, Any], alerts: list[dict[str, Any]]) -> None:
    for start in range(0, len(alerts), 100):
        answer = await stack.alert(tenant, {"alerts": alerts[start : start + 100]})
        assert answer.status_code == 202, answer.text


def accepted(arrivals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in arrivals if a["status"] == 202]


async def all_delivered(stack: Stack, total: int) -> bool:
    done = await stack.count("SELECT count(*) FROM events WHERE status = 'delivered'")
    return done == total


async def test_a_killed_worker_loses_nothing(stack: Stack, workers: StartWorker) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout", limit=UNLIMITED)
    await unlimited_sandbox(stack)
    # Slow answers keep sends in flight when the worker dies.
    await stack.sandbox.http.post(f"{stack.sandbox.url}/_sandbox/faults", json={"latency_ms": 20})
    await send_batches(
        stack, tenant, [{"dedup_key": f"d{i}", "summary": f"#{i}"} for i in range(1000)]
    )

    env = worker_env(stack.deps.config, PDCONNECT_DISPATCH_CONCURRENCY="4")
    first = workers(env)

    async def some_arrived() -> bool:
        return len(await stack.arrivals()) >= 200

    await stack.wait_for(some_arrived)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    in_flight = await stack.count("SELECT count(*) FROM events WHERE status = 'sending'")

    workers(env)
    await stack.wait_for(lambda: all_delivered(stack, 1000), within=120)
    keys = {a["dedup_key"] for a in accepted(await stack.arrivals())}
    assert keys == {f"d{i}" for i in range(1000)}
    # The kill really did leave sends unfinished (so this proves recovery, not luck).
    assert in_flight > 0


async def test_order_holds_through_failures_and_429_bursts_with_two_workers(
    stack: Stack, workers: StartWorker
) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout", limit=UNLIMITED)
    await unlimited_sandbox(stack)
    await stack.sandbox.http.post(
        f"{stack.sandbox.url}/_sandbox/faults",
        json={"error_rate": 0.3, "burst_429": {"every": 60, "length": 15}, "seed": 7},
    )
    alerts = [{"dedup_key": f"k{i % 50}", "summary": f"#{i}"} for i in range(2000)]
    await send_batches(stack, tenant, alerts)

    env = worker_env(
        stack.deps.config,
        PDCONNECT_DISPATCH_CONCURRENCY="8",
        PDCONNECT_RATE_LIMITED_PAUSE_SECONDS="0.05",
    )
    workers(env)
    workers(env)
    await stack.wait_for(lambda: all_delivered(stack, 2000), within=240)

    arrivals = await stack.arrivals()
    assert any(a["status"] == 429 for a in arrivals)
    assert sum(a["status"] >= 500 for a in arrivals) > 200
    per_key: dict[str, list[int]] = defaultdict(list)
    for arrival in accepted(arrivals):
        per_key[arrival["dedup_key"]].append(int(arrival["summary"].lstrip("#")))
    assert len(per_key) == 50
    for key, numbers in per_key.items():
        assert numbers == sorted(numbers), f"{key} arrived out of order"
        assert len(set(numbers)) == 40, f"{key} lost events"


def _seconds(arrival: dict[str, Any]) -> float:
    value = arrival["time"]
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


async def test_no_key_gets_more_than_its_budget_in_any_60_seconds(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    key = (await stack.v2_keys())[0]
    await stack.connect_key(tenant, key, "Checkout")  # the default budget: 120 a minute
    await send_batches(
        stack, tenant, [{"dedup_key": f"r{i}", "summary": f"#{i}"} for i in range(130)]
    )
    async with dispatcher(stack):
        await stack.wait_for(lambda: all_delivered(stack, 130), within=150)
    arrivals = await stack.arrivals(routing_key=key)
    # The sandbox enforces PagerDuty's limit: had we gone over, it would have said 429.
    assert [a for a in arrivals if a["status"] != 202] == []
    times = sorted(_seconds(a) for a in arrivals)
    assert len(times) == 130
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < 60.0) <= 120


async def test_a_storm_does_not_delay_another_tenants_page(stack: Stack) -> None:
    a, b = await stack.tenant("Storm"), await stack.tenant("Quiet")
    keys = await stack.v2_keys()
    await stack.connect_key(a, keys[0], "Storm target")
    await stack.connect_key(b, keys[1], "Quiet target")
    await send_batches(stack, a, [{"summary": f"storm #{i}"} for i in range(5000)])
    async with dispatcher(stack):
        await asyncio.sleep(1.0)  # the storm is under way
        answer = await stack.alert(
            b, {"dedup_key": "b-page", "summary": "the one page that matters"}
        )
        [event] = answer.json()["events"]

        async def paged() -> bool:
            return bool((await stack.event(b, event["id"]))["status"] == "delivered")

        await stack.wait_for(paged, within=30)
        storm_done = await stack.count(
            """
            SELECT count(*) FROM events
            WHERE tenant_id = CAST(:t AS uuid) AND status = 'delivered'
            """,
            t=a["id"],
        )
    assert storm_done < 5000
    assert storm_done <= 125  # A spent its budget; B did not wait for A's backlog
