"""The HTTP/1.1 protocol `pdconnect serve` runs uvicorn with: uvicorn's httptools protocol with
the limits on requests and connections that uvicorn offers only for h11
(`h11_max_incomplete_event_size`) or not at all.

- A request head (request line and headers) over HEAD_MAX_BYTES is answered 431 and the
  connection closed as soon as the limit is crossed, before the rest is held in memory. The
  limits of app/web/limits.py are lower and answer in the app's own shape; this one only stops
  what would cost memory.
- A whole request, head and body, must arrive within `request_timeout_seconds`
  (PDCONNECT_REQUEST_TIMEOUT_SECONDS) of the connection opening, or of the first byte of a
  later request on it. A connection that sends nothing is closed; one whose head is complete
  but whose body trickles is answered 408 and closed. Uvicorn's own timeouts cover neither:
  a sender dribbling a body a byte at a time held its place for ever. (Between requests
  uvicorn's keep-alive timeout closes idle connections.)
- An answer sent before its request's body has fully arrived (a wrong key, a body too large)
  closes the connection: keeping it would mean reading the rest at the sender's pace.
- One client address holds at most `max_connections_per_client`
  (PDCONNECT_MAX_CONNECTIONS_PER_CLIENT) connections of a process; past it a new one is
  answered 429 and closed at once. Behind a trusted proxy (PDCONNECT_TRUSTED_PROXIES) the proxy's
  own connections are not counted, and the address it forwards may have that many requests in
  flight instead.
- When a process holds as many connections as uvicorn's `limit_concurrency` allows, a new one
  does not get uvicorn's 503: the connection whose request has been arriving the longest is
  closed to make room. Senders with a complete request are never the ones shed, so thousands of
  slow connections from many addresses cost a prompt sender nothing.

An answer leaves in one write: uvicorn writes its head (status line and headers) when the app
starts the response and its body as a second write: two system calls, and for a small answer
two TCP segments, each waking the client. Here the head is held until the next write on the
connection (its body's), or until the response ends, the connection closes or this protocol
writes anything itself, whichever comes first (`_Out`).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import _TrustedHosts
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from app.config.model import Config

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent

HEAD_MAX_BYTES = 64 * 1024
# Connections plus requests in flight per web process; past it uvicorn answers 503 at once
# instead of queueing without bound (each process has DB_POOL_SIZE database connections). Slow
# connections are shed before that happens (see the module docstring).
CONCURRENCY_LIMIT = 1000

_TOO_LARGE_TEXT = b"Request header fields too large."
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n"
    b"\r\n%s"
) % (len(_TOO_LARGE_TEXT), _TOO_LARGE_TEXT)


@dataclass(frozen=True)
class ServerLimits:
    request_timeout_seconds: float = 20.0
    max_connections_per_client: int = 100
    trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> ServerLimits:
        return cls(
            request_timeout_seconds=config.request_timeout_seconds,
            max_connections_per_client=config.max_connections_per_client,
            trusted_proxies=config.trusted_proxies,
        )


def _answer(status: int, reason: str, message: str) -> bytes:
    """A whole response written straight to the socket, in the shape of the app's JSON errors:
    these are sent where no request reaches the app."""
    body = json.dumps({"error": {"message": message}}).encode()
    return (
        b"HTTP/1.1 %d %s\r\n"
        b"content-type: application/json\r\n"
        b"content-length: %d\r\n"
        b"connection: close\r\n"
        b"\r\n%s"
    ) % (status, reason.encode(), len(body), body)


def too_many_connections(limit: int) -> str:
    return (
        f"too many connections from this address: at most {limit} at once "
        "(PDCONNECT_MAX_CONNECTIONS_PER_CLIENT)"
    )


def request_too_slow(seconds: float) -> str:
    return (
        f"the request did not arrive within {seconds:g} seconds "
        "(PDCONNECT_REQUEST_TIMEOUT_SECONDS)"
    )


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


class _Clients:
    """What each client address holds in one server (one process)."""

    def __init__(self, limits: ServerLimits) -> None:
        self.held: Counter[str] = Counter()
        self.trusted = _TrustedHosts(list(limits.trusted_proxies))

    def take(self, host: str, limit: int) -> bool:
        if self.held[host] >= limit:
            return False
        self.held[host] += 1
        return True

    def give_back(self, host: str) -> None:
        self.held[host] -= 1
        if self.held[host] <= 0:
            del self.held[host]


_CLIENTS: weakref.WeakKeyDictionary[ServerState, _Clients] = weakref.WeakKeyDictionary()


class _Out:
    """A connection's transport as its request-response cycles write to it: an answer's head,
    written when the app starts the response, is held and goes out with the next write (the
    body's), or on `flush`. Nothing else is held, so nothing is reordered as long as whatever
    writes to the connection without going through here flushes first."""

    __slots__ = ("held", "hold_next", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.hold_next = False
        self.held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self.held
        if held is not None:
            self.held = None
            self.transport.write(held + data)
        elif self.hold_next:
            self.hold_next = False
            self.held = bytes(data)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        held = self.held
        if held is not None:
            self.held = None
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class _Cycle(RequestResponseCycle):
    """uvicorn's request-response cycle, writing through the connection's `_Out` with the head
    of its answer held for the body."""

    transport: _Out  # type: ignore[assignment]

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] != "http.response.start" or self.response_started:
            await super().send(message)
            return
        # The head is uvicorn's one write for this message (a 1xx is never sent this way).
        self.transport.hold_next = True
        try:
            await super().send(message)
        finally:
            # Written and held, or refused (a bad header) before it was written.
            self.transport.hold_next = False


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    head_max_bytes = HEAD_MAX_BYTES
    # Set once per process from the settings (app.main.app_factory); tests set their own.
    limits = ServerLimits()

    @classmethod
    def configure(cls, limits: ServerLimits) -> None:
        cls.limits = limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        self._head_too_large = False
        self._timer: asyncio.TimerHandle | None = None
        # When the request now arriving began to (monotonic); None between requests.
        self.receiving_since: float | None = None
        # Client addresses this connection counts against (its own, or those it forwards).
        self._holds: list[str] = []
        self._forwarded: list[str | None] = []
        self._out = _Out(transport)
        super().connection_made(transport)
        clients = self._clients()
        peer = self.client[0] if self.client else None
        if peer is not None and peer not in clients.trusted:
            if not clients.take(peer, self.limits.max_connections_per_client):
                too_many = too_many_connections(self.limits.max_connections_per_client)
                transport.write(_answer(429, "Too Many Requests", too_many))
                transport.close()
                return
            self._holds.append(peer)
        # Only for a connection that stays: one refused above must not cost another its place.
        self._make_room()
        self._start_receiving()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.receiving_since = None
        clients = self._clients()
        for host in self._holds + self._forwarded:
            if host is not None:
                clients.give_back(host)
        self._holds, self._forwarded = [], []
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._start_receiving()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # As on the wire: "name: value\r\n".
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        previous = self.cycle
        self._start_cycle()
        cycle = self.cycle
        if cycle is not previous and cycle is not None:
            # uvicorn made the request's cycle, and its task, which has not run yet: from its
            # first step it is a `_Cycle` writing through the connection's `_Out`.
            cycle.__class__ = _Cycle
            cycle.transport = self._out  # type: ignore[assignment]

    def _start_cycle(self) -> None:
        forwarded = self._forwarded_client()
        if forwarded is None:
            super().on_headers_complete()
            return
        limit = self.limits.max_connections_per_client
        if self._clients().take(forwarded, limit):
            self._forwarded.append(forwarded)
            super().on_headers_complete()
            return
        # The proxy's connection stays usable: this one request is answered 429 by the app
        # uvicorn runs for it. (None keeps the holds in step with the responses.)
        self._forwarded.append(None)
        app = self.app
        self.app = _refuse_request(too_many_connections(limit))
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_receiving()

    def on_response_complete(self) -> None:
        # An answer that wrote no body (to HEAD) still has its head held.
        self._out.flush()
        if self._forwarded:
            host = self._forwarded.pop(0)
            if host is not None:
                self._clients().give_back(host)
        if not self.pipeline and self.cycle is not None and self.cycle.more_body:
            # Answered before its body arrived: reading the rest would be at the sender's pace.
            self.server_state.total_requests += 1
            self.transport.close()
            return
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        # Written straight to the transport: after whatever an earlier answer has held.
        self._out.flush()
        # Uvicorn answers every parser error here, ours included: answer ours as what it is.
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()

    def _clients(self) -> _Clients:
        clients = _CLIENTS.get(self.server_state)
        if clients is None:
            clients = _CLIENTS[self.server_state] = _Clients(self.limits)
        return clients

    def _forwarded_client(self) -> str | None:
        """The address a trusted proxy forwards this request for; None from any other peer."""
        clients = self._clients()
        peer = self.client[0] if self.client else None
        if peer is None or peer not in clients.trusted:
            return None
        values = [v.decode("latin-1") for n, v in self.headers if n == b"x-forwarded-for"]
        if not values:
            return peer
        host, _ = clients.trusted.get_trusted_client_address(",".join(values))
        return host

    def _make_room(self) -> None:
        """At the concurrency limit, close the connection whose request has been arriving
        the longest, so that uvicorn's 503 is kept for when every place holds real work."""
        limit = self.limit_concurrency
        if limit is None or len(self.connections) < limit:
            return
        slowest: LimitedHttpToolsProtocol | None = None
        for other in self.connections:
            since = getattr(other, "receiving_since", None)
            if other is self or since is None or other.transport.is_closing():
                continue
            assert isinstance(other, LimitedHttpToolsProtocol)
            if slowest is None or since < (slowest.receiving_since or since):
                slowest = other
        if slowest is not None:
            slowest.shed()

    def shed(self) -> None:
        """Give this connection's place up now (uvicorn counts it until connection_lost)."""
        self.connections.discard(self)
        self._give_up(408, "Request Timeout", "the server is busy and this request was too slow")

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.head_max_bytes:
            self._head_too_large = True
            raise _HeadTooLarge

    def _start_receiving(self) -> None:
        if self.receiving_since is None:
            self.receiving_since = time.monotonic()
        if self._timer is None:
            self._timer = self.loop.call_later(
                self.limits.request_timeout_seconds, self._request_timeout
            )

    def _stop_receiving(self) -> None:
        self.receiving_since = None
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _request_timeout(self) -> None:
        self._timer = None
        self._give_up(
            408, "Request Timeout", request_too_slow(self.limits.request_timeout_seconds)
        )

    def _give_up(self, status: int, reason: str, message: str) -> None:
        """Close the connection; a request whose head arrived and that has no answer yet is
        told why. The app, waiting for the body, sees the client gone."""
        if self.transport.is_closing():
            return
        self._out.flush()
        cycle = self.cycle
        if cycle is not None and not cycle.response_started and cycle.more_body:
            self.transport.write(_answer(status, reason, message))
            cycle.response_started = cycle.response_complete = True
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def _refuse_request(message: str) -> _RefuseApp:
    return _RefuseApp(message)


class _RefuseApp:
    """An ASGI app answering every request 429 with `message`."""

    def __init__(self, message: str) -> None:
        self.body = json.dumps({"error": {"message": message}}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.body})
