"""The HTTP/1.1 protocol `pdconnect serve` runs uvicorn with: uvicorn's httptools protocol with
the limits on a request head that uvicorn offers only for h11 (`h11_max_incomplete_event_size`)
or not at all.

- A request head (request line and headers) over HEAD_MAX_BYTES is answered 431 and the
  connection closed as soon as the limit is crossed, before the rest is held in memory. The
  limits of app/web/limits.py are lower and answer in the app's own shape; this one only stops
  what would cost memory.
- A head must be complete within HEAD_TIMEOUT_SECONDS of the connection opening, or of the first
  byte of a later request on it: a connection that sends nothing, or trickles its headers, is
  closed, so idle connections cannot hold the places that `limit_concurrency` counts. (Between
  requests uvicorn's keep-alive timeout already closes idle connections.)
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_MAX_BYTES = 64 * 1024
HEAD_TIMEOUT_SECONDS = 20.0
# Connections plus requests in flight per web process; past it uvicorn answers 503 at once
# instead of queueing without bound (each process has DB_POOL_SIZE database connections).
CONCURRENCY_LIMIT = 1000

_TOO_LARGE_TEXT = b"Request header fields too large."
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\n"
    b"connection: close\r\n"
    b"\r\n%s"
) % (len(_TOO_LARGE_TEXT), _TOO_LARGE_TEXT)


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    head_max_bytes = HEAD_MAX_BYTES
    head_timeout_seconds = HEAD_TIMEOUT_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_bytes = 0
        self._head_too_large = False
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # As on the wire: "name: value\r\n".
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # Uvicorn answers every parser error here, ours included: answer ours as what it is.
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.head_max_bytes:
            self._head_too_large = True
            raise _HeadTooLarge

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_timeout)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()
