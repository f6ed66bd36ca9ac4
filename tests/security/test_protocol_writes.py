"""How `pdconnect serve`'s HTTP protocol (app/web/protocol.py) writes answers, served here in
process over real sockets: a whole answer leaves in one write (head and body together, one
segment for a small answer), and nothing that holding the head could lose or reorder is lost or
reordered: a body sent in parts, an answer to HEAD, pipelined requests, an app failing after it
started its answer.

The writes are counted at asyncio's own socket transport (the event loop's code, which the
tests run on): every byte the server sends passes through its `write`."""

from __future__ import annotations

import asyncio
import weakref
from asyncio import selector_events
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from app.web.protocol import LimitedHttpToolsProtocol
from tests.security.served import serving

# Bounds a wait for something that must happen; never a measure of speed.
PATIENCE = 30.0
BODY = b'{"status": "accepted"}'


class Writes:
    """What the server's connections wrote, one entry per `write` call."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def joined(self) -> bytes:
        return b"".join(self.calls)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Writes:
    seen = Writes()
    transport: Any = getattr(selector_events, "_SelectorSocketTransport")  # noqa: B009 - private
    original = transport.write

    servers: weakref.WeakSet[Any] = weakref.WeakSet()

    def counted(self: Any, data: bytes | bytearray | memoryview) -> None:
        # Only the server's side of a connection: the side whose first write is a status line
        # (a client's starts with its method).
        if self in servers or bytes(data[:5]) == b"HTTP/":
            servers.add(self)
            seen.calls.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(transport, "write", counted)
    return seen


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/echo":
        message = await receive()
        body = message.get("body", b"")
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/parts":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first,", "more_body": True})
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"second"})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    if path == "/fails":
        raise RuntimeError("the app failed after starting its answer")
    await send({"type": "http.response.body", "body": BODY})


@pytest.fixture
async def port(writes: Writes) -> AsyncIterator[int]:
    # asyncio's own loop: its socket transport is where the writes are counted.
    async with serving(
        app, http=LimitedHttpToolsProtocol, loop="asyncio", log_level="critical"
    ) as bound:
        yield bound


def request(method: bytes, path: bytes, *, close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % (method, path, connection)


async def exchange(port: int, data: bytes) -> bytes:
    """Send `data`, then read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(PATIENCE):
        answer = await reader.read()
    writer.close()
    return answer


async def test_an_answer_leaves_in_one_write(port: int, writes: Writes) -> None:
    answer = await exchange(port, request(b"POST", b"/v1/alerts"))

    assert answer.startswith(b"HTTP/1.1 202 ")
    assert answer.endswith(b"\r\n\r\n" + BODY)
    assert writes.calls == [answer]


async def test_an_answer_to_head_is_its_head_alone(port: int, writes: Writes) -> None:
    answer = await exchange(port, request(b"HEAD", b"/v1/alerts"))

    assert answer.startswith(b"HTTP/1.1 202 ")
    assert answer.endswith(b"\r\n\r\n")
    assert b"content-length: %d" % len(BODY) in answer
    assert writes.calls == [answer]


async def test_a_body_in_parts_sends_its_head_with_the_first_and_the_rest_as_it_comes(
    port: int, writes: Writes
) -> None:
    answer = await exchange(port, request(b"GET", b"/parts"))

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked" in answer
    first, *rest = writes.calls
    assert first.startswith(b"HTTP/1.1 200 ")
    assert first.endswith(b"6\r\nfirst,\r\n")
    assert b"".join(rest) == b"6\r\nsecond\r\n0\r\n\r\n"
    assert writes.joined() == answer


async def test_pipelined_requests_are_answered_in_order_one_write_each(
    port: int, writes: Writes
) -> None:
    pipelined = (
        request(b"POST", b"/one", close=False)
        + request(b"HEAD", b"/two", close=False)
        + request(b"POST", b"/three")
    )
    answer = await exchange(port, pipelined)

    assert answer.count(b"HTTP/1.1 202 ") == 3
    assert len(writes.calls) == 3
    assert writes.calls[0].endswith(BODY)
    assert writes.calls[1].endswith(b"\r\n\r\n")
    assert writes.calls[2].endswith(BODY)
    assert writes.joined() == answer


async def test_a_100_continue_is_not_held_for_the_answer(port: int, writes: Writes) -> None:
    # A sender that asks first sends its body only once told to go on (curl waits a second).
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    async with asyncio.timeout(PATIENCE):
        interim = await reader.readuntil(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        await writer.drain()
        answer = await reader.read()
    writer.close()

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\nhello")
    assert writes.calls == [interim, answer]


async def test_an_app_failing_after_its_head_closes_with_the_head_sent(
    port: int, writes: Writes
) -> None:
    answer = await exchange(port, request(b"POST", b"/fails", close=False))

    # As uvicorn does: the head was sent, the connection closes without the body it promised.
    assert answer.startswith(b"HTTP/1.1 202 ")
    assert answer.endswith(b"\r\n\r\n")
    assert writes.calls == [answer]
