"""POSTs over kept-alive HTTP/1.1 connections, written and read by hand: a load generator for
the open-loop streams (bench.time_to_page's background), where each request needs its own body
and its own answer time, which wrk's scripts cannot give.

A general client spends most of its time on what a fixed stream of small JSON POSTs to one
server does not need (URL parsing, header models, timeouts per phase, pools keyed by origin):
httpx2 sending 500 alerts a second took about 40 % of one core, CPU the measured processes on
the same machine then lacked. Here a request is one `write` of bytes prepared up front but for
its body, and an answer is read only as far as its status and its Content-Length.

Only what the benchmarks send is handled: answers with a Content-Length (no chunked bodies),
no redirects, no TLS. A connection the server closed is opened again for the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from urllib.parse import urlsplit


class PostError(Exception):
    """The request got no complete HTTP answer."""


class RawPoster:
    """At most `connections` requests at once to one `http://host:port`; more wait for one."""

    def __init__(self, url: str, connections: int) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"a plain http:// URL is needed, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self._authority = f"{self.host}:{self.port}"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._room = asyncio.Semaphore(connections)

    def head(self, path: str, headers: Mapping[str, str]) -> bytes:
        """The request line and headers of a JSON POST to `path`, without Content-Length:
        prepared once per kind of request."""
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append("Content-Type: application/json")
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    async def post(self, head: bytes, body: bytes) -> int:
        """Send `body` after `head` (from `head()`); the answer's status code."""
        request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        async with self._room:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._open()
            try:
                status, keep = await _exchange(conn, request)
            except (OSError, asyncio.IncompleteReadError, PostError) as exc:
                _close(conn)
                if not reused or not _unanswered(exc):
                    raise PostError(str(exc) or type(exc).__name__) from exc
                # A kept-alive connection the server had closed before reading this request:
                # once more, on a new one.
                conn = await self._open()
                try:
                    status, keep = await _exchange(conn, request)
                except (OSError, asyncio.IncompleteReadError, PostError) as again:
                    _close(conn)
                    raise PostError(str(again) or type(again).__name__) from again
            if keep:
                self._idle.append(conn)
            else:
                _close(conn)
            return status

    async def close(self) -> None:
        while self._idle:
            _close(self._idle.pop())

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)


def _unanswered(exc: BaseException) -> bool:
    """Whether the connection ended before any byte of an answer."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return not exc.partial
    return isinstance(exc, ConnectionError)


async def _exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
) -> tuple[int, bool]:
    """Write the request, read its answer: (status, whether the connection may be used
    again)."""
    reader, writer = conn
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, rest = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise PostError(f"not an HTTP answer: {status_line[:80]!r}")
    length = 0
    keep = True
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    if length:
        await reader.readexactly(length)
    return int(parts[1]), keep


def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    with contextlib.suppress(Exception):
        conn[1].close()
