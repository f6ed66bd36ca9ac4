"""Webhooks from a sandbox served by uvicorn in a thread, with no lifespan and no injected
transport, to a receiver on another loopback port: real HTTP both ways."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx2
import uvicorn
from starlette.types import ASGIApp

from pdsandbox import create_sandbox_app, sandbox_state
from tests.sandbox.events_flow import incidents, send, trigger, v2_key
from tests.sandbox.flow import ACME_USER, connect, sandbox_config
from tests.sandbox.webhook_flow import Receiver, subscribe, verify


def _loopback_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def serving(app: ASGIApp, probe: socket.socket) -> AsyncIterator[str]:
    """`app` on the bound socket `probe`, in a uvicorn thread; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [probe]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        await asyncio.sleep(0.01)
    try:
        yield _url(probe)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        probe.close()


async def _until(condition: Callable[[], bool]) -> None:
    """Poll: what it waits for happens in another thread, with no event to wait on."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 5 s")


async def test_webhooks_go_over_loopback_from_a_uvicorn_thread() -> None:
    receiver = Receiver()
    sandbox_socket = _loopback_socket()
    sandbox = create_sandbox_app(replace(sandbox_config(), base_url=_url(sandbox_socket)))
    state = sandbox_state(sandbox)

    async with (
        serving(receiver.app, _loopback_socket()) as hook_url,
        serving(sandbox, sandbox_socket) as sandbox_url,
        httpx2.AsyncClient(base_url=sandbox_url, trust_env=False) as client,
    ):
        token = (await connect(client))["access_token"]
        _, secret = await subscribe(client, token, url=f"{hook_url}/hook")
        await send(client, trigger(v2_key(state), "x"))
        await _until(lambda: len(receiver.received) == 1)
        # A change made from this thread is handed to the loop serving the sandbox.
        (found,) = await incidents(client)
        incident = state.incidents.incidents[found["id"]]
        state.incidents.acknowledge_incident(incident, state.now(), ACME_USER)
        await _until(lambda: len(receiver.received) == 2)

    assert receiver.event_types() == ["incident.triggered", "incident.acknowledged"]
    assert all(verify(r, secret) for r in receiver.received)
    assert {r.path for r in receiver.received} == {"/hook"}
