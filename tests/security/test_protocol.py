"""The HTTP protocol `pdconnect serve` runs uvicorn with (app/web/protocol.py), served here in
process over real sockets: a head over the limit is answered 431 before it is held, and a head
that does not arrive in time closes the connection, while kept-alive connections keep working."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.types import Receive, Scope, Send

from app.web.protocol import HEAD_MAX_BYTES, LimitedHttpToolsProtocol, ServerLimits
from tests.security.served import serving

# Bounds a wait for something that must happen; never a measure of speed.
PATIENCE = 30.0


class QuickHeadTimeout(LimitedHttpToolsProtocol):
    limits = ServerLimits(request_timeout_seconds=0.5)


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serving(hello, http=QuickHeadTimeout) as bound:
        yield bound


def head(extra: bytes = b"") -> bytes:
    return b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


async def exchange(port: int, data: bytes) -> bytes:
    """Send `data`, then read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    async with asyncio.timeout(PATIENCE):
        answer = await reader.read()
    writer.close()
    return answer


async def test_a_head_up_to_the_limit_is_served(port: int) -> None:
    line = b"X-Big: %s\r\n"
    filler = HEAD_MAX_BYTES - len(head()) - len(line % b"") - 100
    answer = await exchange(port, head(line % (b"a" * filler)) + head(b"Connection: close\r\n"))
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_head_over_the_limit_gets_431_and_the_connection_closes(port: int) -> None:
    answer = await exchange(port, head(b"X-Big: %s\r\n" % (b"a" * HEAD_MAX_BYTES)))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.endswith(b"Request header fields too large.")
    many = b"".join(b"X-%d: 1\r\n" % n for n in range(HEAD_MAX_BYTES // 8))
    assert (await exchange(port, head(many))).startswith(b"HTTP/1.1 431 ")


async def test_a_connection_that_sends_no_head_in_time_is_closed(port: int) -> None:
    assert await exchange(port, b"") == b""
    # Trickling the head does not help: the time runs from the connection's start.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    pieces = [b"GET / HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", *[b"X-A: 1\r\n"] * 600]
    try:
        async with asyncio.timeout(PATIENCE):
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.01)
                if reader.at_eof():
                    break
            rest = await reader.read()
    except ConnectionError:
        # Bytes still arriving at a closed socket may reset the connection: closed all the same.
        rest = b""
    writer.close()
    assert rest == b""


async def test_a_kept_alive_connection_outlives_the_head_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(PATIENCE):
        writer.write(head())
        assert (await reader.readuntil(b"hello")).startswith(b"HTTP/1.1 200 ")
        # Longer than the head timeout, shorter than uvicorn's keep-alive (5 s).
        await asyncio.sleep(1.5)
        writer.write(head())
        assert (await reader.readuntil(b"hello")).startswith(b"HTTP/1.1 200 ")
    writer.close()
