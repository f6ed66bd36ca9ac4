"""Outbound HTTP's sockets on asyncio itself: the network layer under httpx2's client.

httpx2 sends through httpcore2, which by default reaches the network through anyio. Every read
and write then passes anyio's cancel scopes, task lookups and checkpoints, and for a
dispatcher whose work is one small POST after another that is a large share of what a delivery
costs (bench/dispatch.py: about a sixth of the worker's CPU went to anyio's write alone).
httpcore2 takes any network backend (`AsyncNetworkBackend`, part of its public API); this one
is an asyncio protocol with a buffer:

- a write hands the bytes to the transport, which sends what the socket takes at once, and
  waits (under the write timeout) only when the transport's buffer is above its high-water
  mark;
- a read returns what has arrived, and waits under the read timeout only when nothing has;
- TLS is the event loop's own `start_tls`, with the SSL context httpx2 built (certificate
  checks and ALPN are that context's);
- a host with several addresses has them raced as anyio raced them (`first_to_succeed`), so an
  address family that goes nowhere does not cost a connect its whole timeout.

Everything above the sockets (HTTP/1.1, the pool, keep-alive, the timeouts' values, the
errors the callers see) is httpcore2's and httpx2's, unchanged. A proxy set in the
environment (HTTPS_PROXY, ALL_PROXY…) is honoured as httpx2 honours it: the client is then
httpx2's own, proxy transports included (`environment_proxied`).
"""

# httpcore2's interface passes each operation its timeout: ASYNC109 cannot apply here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import functools
import itertools
import socket
import ssl
import urllib.request
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar, cast

import httpcore2
import httpx2

# Past this much unread data the socket is not read further until the reader catches up.
# PagerDuty's answers are a few hundred bytes; this bounds what a misbehaving peer can queue.
READ_BUFFER_LIMIT = 256 * 1024
# When a host has several addresses, the next is tried this long after the one before it
# (RFC 8305's recommended delay; anyio, which httpcore2 would otherwise connect through, waits
# as long).
CONNECT_STAGGER = 0.25
# A client with many requests in flight spreads them over pools of about this many connections
# (SpreadTransport).
POOL_CONNECTIONS = 16
T = TypeVar("T")


class _Protocol(asyncio.Protocol):
    """Bytes as they arrive, the end of the stream, and whether writes must wait."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.lost = False
        self.reading_paused = False
        self.reader: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's: typed, not checked.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_BUFFER_LIMIT and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake_reader()
        # False: the transport closes itself (there is nothing more to write on a response).
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        if exc is not None:
            self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    def _wake_reader(self) -> None:
        waiter, self.reader = self.reader, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter, self.writable = self.writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self.reading_paused and len(self.buffer) <= READ_BUFFER_LIMIT // 2:
            self.reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return data


async def _within(
    waiter: asyncio.Future[None], timeout: float | None, timed_out: type[Exception], doing: str
) -> None:
    """Wait for `waiter` (data to read, room to write), as httpcore2's timeout for it allows."""
    try:
        async with asyncio.timeout(timeout):
            await waiter
    except TimeoutError as exc:
        raise timed_out(f"timed out {doing}") from exc


class AsyncioStream(httpcore2.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            protocol.reader = protocol.loop.create_future()
            await _within(protocol.reader, timeout, httpcore2.ReadTimeout, "reading")
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore2.ReadError(str(protocol.error)) from protocol.error
        # The end of the stream: httpcore2 reads b"" as the peer having closed.
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if protocol.lost or self._transport.is_closing():
            raise httpcore2.WriteError("the connection is closed")
        try:
            self._transport.write(buffer)
        except OSError as exc:
            raise httpcore2.WriteError(str(exc)) from exc
        if protocol.writable is None:
            return
        await _within(protocol.writable, timeout, httpcore2.WriteTimeout, "writing")
        if protocol.lost:
            raise httpcore2.WriteError(str(protocol.error or "the connection is closed"))

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        loop = self._protocol.loop
        try:
            async with asyncio.timeout(timeout):
                secured = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore2.ConnectTimeout(str(exc) or "timed out in the TLS handshake") from exc
        except OSError as exc:  # ssl.SSLError (a certificate refused included) is one
            self._transport.close()
            raise httpcore2.ConnectError(str(exc)) from exc
        if secured is None:
            self._transport.close()
            raise httpcore2.ConnectError("the connection closed in the TLS handshake")
        self._protocol.transport = secured
        return AsyncioStream(secured, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # Asked of an idle keep-alive connection before it is reused: anything that came
            # while it was idle (the peer's close, or stray bytes) means it must not be.
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.eof or protocol.lost
        return None


class AsyncioBackend(httpcore2.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                attempts = [
                    functools.partial(_connect, loop, family, address, local_address)
                    for family, address in interleaved_addresses(infos)
                ]
                transport, protocol = await first_to_succeed(attempts, CONNECT_STAGGER)
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(str(exc) or "timed out connecting") from exc
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("unix sockets are not used for outbound HTTP")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


Address = tuple[Any, ...]


def interleaved_addresses(
    infos: Sequence[tuple[Any, Any, Any, Any, Address]],
) -> list[tuple[int, Address]]:
    """The resolver's addresses, families taking turns from the first one's (RFC 8305 §4)."""
    by_family: dict[int, list[Address]] = {}
    for family, _, _, _, address in infos:
        if address not in by_family.setdefault(family, []):
            by_family[family].append(address)
    turns = itertools.zip_longest(*by_family.values())
    families = list(by_family)
    return [
        (families[i], address)
        for turn in turns
        for i, address in enumerate(turn)
        if address is not None
    ]


async def _connect(
    loop: asyncio.AbstractEventLoop, family: int, address: Address, local_address: str | None
) -> tuple[asyncio.Transport, _Protocol]:
    host, port = address[0], address[1]
    return await loop.create_connection(
        lambda: _Protocol(loop),
        host,
        port,
        family=family,
        local_addr=None if local_address is None else (local_address, 0),
    )


async def first_to_succeed(
    attempts: Sequence[Callable[[], Coroutine[Any, Any, T]]], stagger: float
) -> T:
    """The first of `attempts` to succeed, each started `stagger` seconds after the one before
    or as soon as the one before fails (Happy Eyeballs, RFC 8305): an address that never
    answers (an IPv6 route that goes nowhere) costs the next one a short delay, not the whole
    connect timeout. The others are cancelled, and a second success is closed. Raises the
    first failure (with the others' as notes) when every attempt fails.

    What anyio's connect did for httpcore2; uvloop's own `create_connection` tries each
    address in turn and has no such option."""
    if not attempts:
        raise OSError("the name resolved to no address")
    running: set[asyncio.Task[T]] = set()
    errors: list[BaseException] = []
    left = iter(attempts)
    winner: asyncio.Task[T] | None = None
    try:
        while winner is None:
            attempt = next(left, None)
            if attempt is not None:
                running.add(asyncio.create_task(attempt()))
            elif not running:
                break
            # Until one succeeds, one fails (the next starts at once) or the stagger passes.
            wait = None if attempt is None else stagger
            done, _ = await asyncio.wait(running, timeout=wait, return_when=FIRST_COMPLETED)
            for task in done:
                running.discard(task)
                failure = task.exception()
                if failure is not None:
                    errors.append(failure)
                elif winner is None:
                    winner = task
                else:
                    _close(task.result())
    finally:
        for task in running:
            task.cancel()
        # Cancelled attempts are awaited, so none finishes later with a socket left open.
        if running:
            await asyncio.wait(running)
            for task in running:
                if not task.cancelled() and task.exception() is None:
                    _close(task.result())
    if winner is None:
        first = errors[0] if errors else OSError("no address could be connected to")
        for other in errors[1:]:
            first.add_note(f"also: {other}")
        raise first
    return winner.result()


def _close(result: object) -> None:
    if isinstance(result, tuple) and result and isinstance(result[0], asyncio.BaseTransport):
        result[0].close()


class AsyncioTransport(httpx2.AsyncHTTPTransport):
    """httpx2's HTTP transport, its connection pool on `AsyncioBackend`.

    httpx2's transport takes no network backend, so its pool is built here the way httpx2
    builds it (same SSL context, same limits) with the backend added; every method of the
    transport (the request and response conversion, the mapping of httpcore2's errors to
    httpx2's) is httpx2's own and reads that pool. tests/test_outbound.py checks that a
    request really goes through this backend."""

    def __init__(self, *, limits: httpx2.Limits) -> None:
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=True, trust_env=True),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )


class SpreadTransport(httpx2.AsyncBaseTransport):
    """Several `AsyncioTransport`s, each request sent through the one with the fewest requests
    in flight (the first of those, so that a quiet client keeps reusing one pool's kept-alive
    connections).

    Why: httpcore2's pool looks at every one of its connections (closed? expired? idle?) each
    time a request starts and each time one ends. With the dispatcher's 64 connections in one
    pool that walk was about a fifth of the client's CPU per send (bench.outbound: 552-684 µs
    a send in one pool, 427-559 µs over four). Each pool keeps the whole limits, so a request
    never waits for a connection while another pool has one free; the connections open at once
    stay within the sends in flight, which the dispatcher caps, and idle ones expire as in one
    pool."""

    def __init__(self, *, limits: httpx2.Limits, pools: int) -> None:
        self.pools = tuple(AsyncioTransport(limits=limits) for _ in range(max(1, pools)))
        self._in_flight = [0] * len(self.pools)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index = self._in_flight.index(min(self._in_flight))
        self._in_flight[index] += 1
        release = functools.partial(self._release, index)
        try:
            response = await self.pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _ReleasedOnClose(response.stream, release)
        return response

    @property
    def in_flight(self) -> tuple[int, ...]:
        """Requests each pool has in flight: sent, their answer not yet read and closed."""
        return tuple(self._in_flight)

    def _release(self, index: int) -> None:
        self._in_flight[index] -= 1

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()


class _ReleasedOnClose(httpx2.AsyncByteStream):
    """An answer's body that counts its request finished once closed (once, however often
    it is closed): httpx2 closes it after reading it, or on any error while reading."""

    def __init__(self, stream: httpx2.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._release is not None:
                self._release()
                self._release = None


def environment_proxied() -> bool:
    """Whether the environment names a proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, in either
    case), which httpx2's own client honours for the URLs it covers."""
    proxies = urllib.request.getproxies()
    return any(scheme in proxies for scheme in ("http", "https", "all"))
