"""Callbacks' tests: a committed database (senders claim across connections), and receivers:
real HTTP servers on loopback, run by the test, that record what arrives and answer as told."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from databases import Database
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


@dataclass
class Arrival:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """Answers `status` (a callable may decide per request), after `delay` seconds."""

    url: str
    status: int | Callable[[Arrival], int] = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    arrivals: list[Arrival] = field(default_factory=list)
    # Requests being answered right now, and the most at once.
    busy: int = 0
    most_busy: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        arrival = Arrival(dict(request.headers), await request.body(), 0)
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            arrival.status = self.status(arrival) if callable(self.status) else self.status
            self.arrivals.append(arrival)
            response = Response(b"answer", status_code=arrival.status, headers=self.headers)
            await response(scope, receive, send)
        finally:
            self.busy -= 1

    def delivered(self) -> list[Arrival]:
        return [a for a in self.arrivals if 200 <= a.status < 300]


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[[], Awaitable[Receiver]]]:
    """Start receivers, each on a loopback port of its own (so each is a host of its own)."""
    servers: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    async def start() -> Receiver:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        receiver = Receiver(url=f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/pdconnect")
        server = uvicorn.Server(uvicorn.Config(receiver, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            await asyncio.sleep(0.01)
        servers.append((server, thread, sock))
        return receiver

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
async def committed(cdb: Database) -> AsyncIterator[Database]:
    """The committed database, with the global receiver's flag cleared after the test (the
    rest goes with the tenants)."""
    yield cdb
    await cdb.execute("DELETE FROM callback_defaults")


async def until(condition: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.05)


def body_of(arrival: Arrival) -> Any:
    import json

    return json.loads(arrival.body)
