"""The chaos harness's reader of the sandbox's arrival log keeps up with requests the sandbox
holds: one read while held (no status yet) is read again until it has its answer, and one that
was taken after its wait counts as delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import pytest

from bench.chaos.watch import Watcher
from pdsandbox import SandboxState, create_sandbox_app, sandbox_state
from tests.sandbox.events_flow import send, trigger
from tests.sandbox.events_flow import v2_key as key_of
from tests.sandbox.flow import BASE_URL, FakeClock, sandbox_config

WAIT_SECONDS = 10.0  # for the watcher to see what happened; never a speed assertion


@pytest.fixture
def sandbox() -> tuple[httpx2.AsyncClient, SandboxState]:
    app = create_sandbox_app(sandbox_config(), FakeClock())
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE_URL)
    return client, sandbox_state(app)


@pytest.fixture
async def client(
    sandbox: tuple[httpx2.AsyncClient, SandboxState],
) -> AsyncIterator[httpx2.AsyncClient]:
    async with sandbox[0] as http:
        yield http


async def eventually(check: object, what: str) -> None:
    assert callable(check)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not check():
        assert loop.time() < deadline, f"{what}: not within {WAIT_SECONDS:g} s"
        await asyncio.sleep(0.02)


async def test_a_held_request_is_read_again_until_it_has_its_answer(
    client: httpx2.AsyncClient, sandbox: tuple[httpx2.AsyncClient, SandboxState]
) -> None:
    state = sandbox[1]
    slow, other = key_of(state, 0), key_of(state, 1)
    release = asyncio.Event()

    async def held(seconds: float) -> None:
        await release.wait()

    state.sleep = held
    await client.post(f"/_sandbox/faults/keys/{slow}", json={"latency_ms": 20_000})
    async with Watcher(client, BASE_URL, {slow, other}) as watcher:
        sending = asyncio.create_task(send(client, trigger(slow, "late")))
        await eventually(lambda: len(watcher.arrivals) == 1, "the held request is read")
        held_status = watcher.arrivals[0].status
        assert (await send(client, trigger(other, "on-time"))).status_code == 202
        await eventually(lambda: len(watcher.arrivals) == 2, "the next request is read")
        release.set()
        assert (await sending).status_code == 202

        delivered = await watcher.until_delivered(
            [("late", "trigger"), ("on-time", "trigger")], WAIT_SECONDS
        )
        settled = await watcher.settled(WAIT_SECONDS)

    assert held_status is None
    assert delivered
    assert settled
    assert [(a.dedup_key, a.status) for a in watcher.arrivals] == [
        ("late", 202),
        ("on-time", 202),
    ]
