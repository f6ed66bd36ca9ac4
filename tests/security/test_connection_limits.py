"""The connection limits of the protocol `pdconnect serve` runs (app/web/protocol.py), served in
process over real sockets: a full server sheds its slowest arriving request instead of refusing
a prompt one, and behind a trusted proxy the address it forwards is what the per-client cap
counts."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from app.web.protocol import LimitedHttpToolsProtocol, ServerLimits
from tests.security.served import serving

# Bounds a wait for something that must happen; never a measure of speed.
PATIENCE = 30.0
PER_CLIENT = 2
ROOM = 4


class Shedding(LimitedHttpToolsProtocol):
    limits = ServerLimits(request_timeout_seconds=PATIENCE)


class BehindProxy(LimitedHttpToolsProtocol):
    limits = ServerLimits(
        request_timeout_seconds=PATIENCE,
        max_connections_per_client=PER_CLIENT,
        trusted_proxies=("127.0.0.1",),
    )


def app_holding(release: asyncio.Event) -> ASGIApp:
    """Answers 200; on /hold only once `release` is set."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/hold":
            await release.wait()
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def get(path: str, *lines: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


async def send(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def test_a_full_server_sheds_the_slowest_arrival_not_the_newcomer() -> None:
    async with serving(app_holding(asyncio.Event()), http=Shedding, limit_concurrency=ROOM) as port:
        # Uvicorn counts the newcomer among its places: the slow ones fill all the others, each
        # with half a head, oldest first.
        slow = []
        for _ in range(ROOM - 1):
            slow.append(await send(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
            await asyncio.sleep(0.05)
        reader, writer = await send(port, get("/", "Connection: close"))
        async with asyncio.timeout(PATIENCE):
            answer = await reader.read()
            # The oldest slow arrival made room: closed without an answer (it sent no request).
            assert await slow[0][0].read() == b""
        writer.close()
        # Uvicorn would have answered 503 to the newcomer.
        assert answer.startswith(b"HTTP/1.1 200 ")
        for other_reader, _ in slow[1:]:
            assert not other_reader.at_eof()
        for _, other_writer in slow:
            other_writer.close()


async def test_a_shed_request_whose_head_arrived_is_told_why() -> None:
    release = asyncio.Event()
    async with serving(app_holding(release), http=Shedding, limit_concurrency=2) as port:
        body_pending = get("/hold").replace(b"\r\n\r\n", b"\r\nContent-Length: 10\r\n\r\n")
        reader, writer = await send(port, body_pending)
        await asyncio.sleep(0.1)
        _, other = await send(port, b"GET / HT")
        async with asyncio.timeout(PATIENCE):
            answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"too slow" in answer
        writer.close()
        other.close()
        # The app's task, still waiting, ends (its answer goes nowhere) so the server can stop.
        release.set()


async def test_behind_a_trusted_proxy_the_forwarded_address_is_capped() -> None:
    release = asyncio.Event()
    async with serving(app_holding(release), http=BehindProxy) as port:
        # The proxy (127.0.0.1, trusted) may open more connections than the cap...
        held = [
            await send(port, get("/hold", "X-Forwarded-For: 203.0.113.5"))
            for _ in range(PER_CLIENT)
        ]
        await asyncio.sleep(0.1)
        # ...but one forwarded address may have only so many requests in flight.
        reader, writer = await send(port, get("/", "X-Forwarded-For: 203.0.113.5"))
        other_reader, other_writer = await send(port, get("/", "X-Forwarded-For: 203.0.113.6"))
        async with asyncio.timeout(PATIENCE):
            refused = await reader.readuntil(b"}}")
            served = await other_reader.readuntil(b"ok")
        assert refused.startswith(b"HTTP/1.1 429 ")
        assert b"PDCONNECT_MAX_CONNECTIONS_PER_CLIENT" in refused
        assert served.startswith(b"HTTP/1.1 200 ")

        # The refusal kept the proxy's connection, and once the held requests are answered
        # the address has room again.
        release.set()
        async with asyncio.timeout(PATIENCE):
            for held_reader, _ in held:
                assert (await held_reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200 ")
            writer.write(get("/", "X-Forwarded-For: 203.0.113.5"))
            assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200 ")
        for _, held_writer in held:
            held_writer.close()
        writer.close()
        other_writer.close()
