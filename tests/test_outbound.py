"""Outbound HTTP on asyncio's own sockets (app/outbound.py), through the client every part of
pdconnect sends with (`new_http_client`), against servers written here that do what PagerDuty,
a vendor's callback endpoint or a broken network may do: keep a connection alive, close it while
idle, answer with TLS from a private authority, send a large answer, read slowly, not answer."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app.deps import new_http_client
from app.outbound import (
    AsyncioBackend,
    AsyncioTransport,
    SpreadTransport,
    first_to_succeed,
    interleaved_addresses,
)
from tests.contract.tls import LOOPBACK, TlsFiles, make_tls_files

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
PROXY_VARIABLES = (
    *("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"),
    *("https_proxy", "http_proxy", "all_proxy"),
)


@pytest.fixture(autouse=True)
def no_proxy_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


class Server:
    """A loopback server calling `handler` for each connection, counting them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0
        self.open: set[asyncio.StreamWriter] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open.add(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()


@asynccontextmanager
async def serving(handler: Handler, tls: TlsFiles | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert, tls.key)
    listener = await asyncio.start_server(server._serve, LOOPBACK, 0, ssl=context)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        # Connections still open (a kept-alive one) end with the test.
        for writer in list(server.open):
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The request's head and its body (by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def answer(body: bytes, status: str = "202 Accepted") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def echo_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request on the connection with its own body (keep-alive)."""
    while True:
        _, body = await read_request(reader)
        writer.write(answer(body))
        await writer.drain()


def test_the_client_sends_through_asyncio_sockets() -> None:
    client = new_http_client()
    transport = client._transport  # what httpx2 sends through when no proxy is mounted
    assert isinstance(transport, AsyncioTransport)
    assert isinstance(transport._pool._network_backend, AsyncioBackend)


async def test_requests_share_one_kept_alive_connection() -> None:
    async with serving(echo_forever) as server, new_http_client() as client:
        url = f"http://{LOOPBACK}:{server.port}/v2/enqueue"
        for n in range(5):
            response = await client.post(url, json={"n": n})
            assert response.status_code == 202
            assert response.json() == {"n": n}
        assert server.connections == 1


async def test_concurrent_requests_each_get_their_own_answer() -> None:
    async with serving(echo_forever) as server, new_http_client(pool_size=4) as client:
        url = f"http://{LOOPBACK}:{server.port}/v2/enqueue"
        responses = await asyncio.gather(*(client.post(url, json={"n": n}) for n in range(40)))
        assert [r.json() for r in responses] == [{"n": n} for n in range(40)]
        assert server.connections <= 4


def spread(client: httpx2.AsyncClient) -> SpreadTransport:
    transport = client._transport  # what httpx2 sends through when no proxy is mounted
    assert isinstance(transport, SpreadTransport)
    return transport


def test_a_client_of_many_sends_spreads_them_over_pools_of_asyncio_sockets() -> None:
    transport = spread(new_http_client(pool_size=64))  # the dispatcher's
    assert len(transport.pools) == 4
    assert all(isinstance(p._pool._network_backend, AsyncioBackend) for p in transport.pools)


async def test_a_quiet_client_of_many_sends_keeps_reusing_one_connection() -> None:
    async with serving(echo_forever) as server, new_http_client(pool_size=64) as client:
        url = f"http://{LOOPBACK}:{server.port}/v2/enqueue"
        for n in range(5):
            assert (await client.post(url, json={"n": n})).json() == {"n": n}
        assert server.connections == 1


async def test_sends_at_once_spread_over_the_pools_and_none_waits_for_a_connection() -> None:
    at_once = 32
    arrived: list[int] = []
    all_in = asyncio.Event()
    client = new_http_client(pool_size=at_once)
    transport = spread(client)
    when_all_in: list[tuple[int, ...]] = []

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # No answer until every request has arrived: a request waiting for a connection
        # would hold them all.
        _, body = await read_request(reader)
        arrived.append(1)
        if len(arrived) == at_once:
            when_all_in.append(transport.in_flight)
            all_in.set()
        await all_in.wait()
        writer.write(answer(body))
        await writer.drain()
        await asyncio.sleep(5)

    async with serving(held) as server, client:
        url = f"http://{LOOPBACK}:{server.port}/v2/enqueue"
        sends = asyncio.gather(*(client.post(url, json={"n": n}) for n in range(at_once)))
        responses = await asyncio.wait_for(sends, 10)
        assert when_all_in == [(16, 16)]
        assert [r.json() for r in responses] == [{"n": n} for n in range(at_once)]
        assert transport.in_flight == (0, 0)
        assert server.connections == at_once


async def test_a_send_that_fails_is_counted_finished() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()

    async with serving(cut) as server:
        port = server.port
        async with new_http_client(pool_size=32) as client:
            transport = spread(client)
            with pytest.raises(httpx2.RemoteProtocolError):
                await client.post(f"http://{LOOPBACK}:{port}/", json={})
            assert transport.in_flight == (0, 0)
    async with new_http_client(pool_size=32) as client:
        transport = spread(client)
        with pytest.raises(httpx2.ConnectError):
            await client.post(f"http://{LOOPBACK}:{port}/", json={})
        assert transport.in_flight == (0, 0)


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Keep-alive by the headers, closed right after: as a server whose idle timeout is
        # shorter than the client's does.
        _, body = await read_request(reader)
        writer.write(answer(body))
        await writer.drain()

    async with serving(answer_once) as server, new_http_client() as client:
        url = f"http://{LOOPBACK}:{server.port}/"
        assert (await client.post(url, json={"n": 1})).json() == {"n": 1}
        await asyncio.sleep(0.1)  # the close reaches the client's idle connection
        assert (await client.post(url, json={"n": 2})).json() == {"n": 2}
        assert server.connections == 2


async def test_a_large_answer_arrives_whole() -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB: past the read buffer's limit many times

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(payload, "200 OK"))
        await writer.drain()

    async with serving(large) as server, new_http_client() as client:
        response = await client.get(f"http://{LOOPBACK}:{server.port}/")
        assert response.content == payload


async def test_a_large_request_reaches_a_slow_reader_whole() -> None:
    sent = b"x" * (8 * 1024 * 1024)  # far past the transport's write buffer

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"content-length: 8388608" in head.lower()
        got = 0
        while got < len(sent):
            got += len(await reader.read(65536))
            await asyncio.sleep(0.001)
        writer.write(answer(str(got).encode()))
        await writer.drain()

    async with serving(slow) as server, new_http_client() as client:
        response = await client.post(f"http://{LOOPBACK}:{server.port}/", content=sent)
        assert response.json() == len(sent)


async def test_a_server_that_never_reads_is_a_write_timeout() -> None:
    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with serving(deaf) as server, new_http_client() as client:
        with pytest.raises(httpx2.WriteTimeout):
            await client.post(
                f"http://{LOOPBACK}:{server.port}/",
                content=b"x" * (64 * 1024 * 1024),
                timeout=httpx2.Timeout(5.0, write=0.3),
            )


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with serving(silent) as server, new_http_client() as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.post(
                f"http://{LOOPBACK}:{server.port}/", json={}, timeout=httpx2.Timeout(0.3)
            )


async def test_a_server_that_hangs_up_mid_answer_is_an_error_not_an_answer() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{\"status\"")
        await writer.drain()

    async with serving(cut) as server, new_http_client() as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.post(f"http://{LOOPBACK}:{server.port}/", json={})


async def test_nothing_listening_is_a_connect_error() -> None:
    async with serving(echo_forever) as server:
        port = server.port
    async with new_http_client() as client:
        with pytest.raises(httpx2.ConnectError):
            await client.post(f"http://{LOOPBACK}:{port}/", json={})


async def test_tls_to_a_trusted_certificate(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The way an operator trusts a private authority: httpx2 reads SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))
    async with serving(echo_forever, tls_files) as server, new_http_client() as client:
        url = f"https://{LOOPBACK}:{server.port}/v2/enqueue"
        for n in range(3):
            assert (await client.post(url, json={"n": n})).json() == {"n": n}
        assert server.connections == 1


async def test_tls_to_an_untrusted_certificate_is_refused(tls_files: TlsFiles) -> None:
    async with serving(echo_forever, tls_files) as server, new_http_client() as client:
        with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(f"https://{LOOPBACK}:{server.port}/", json={})


async def test_tls_to_a_certificate_for_another_name_is_refused(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))
    # The certificate names 127.0.0.1, not localhost.
    async with serving(echo_forever, tls_files) as server, new_http_client() as client:
        with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(f"https://localhost:{server.port}/", json={})


async def test_a_proxy_named_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment whose way out is a proxy: requests go to it, in absolute form."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        seen.append(head.split(b"\r\n")[0])
        writer.write(answer(b'{"via": "proxy"}'))
        await writer.drain()

    async with serving(proxy) as server:
        monkeypatch.setenv("HTTP_PROXY", f"http://{LOOPBACK}:{server.port}")
        async with new_http_client() as client:
            assert not isinstance(client._transport, AsyncioTransport)
            response = await client.post("http://events.pagerduty.invalid/v2/enqueue", json={})
    assert response.json() == {"via": "proxy"}
    assert seen == [b"POST http://events.pagerduty.invalid/v2/enqueue HTTP/1.1"]


# Connecting to a host with several addresses: one that never answers must not cost the whole
# connect timeout (RFC 8305). The attempts below are the race's inputs: coroutines that hang,
# fail or succeed as an address would.


async def _hangs() -> str:
    await asyncio.sleep(30)
    return "never"


async def _refused() -> str:
    raise ConnectionRefusedError("refused")


async def _answers() -> str:
    return "connected"


async def test_an_address_that_never_answers_costs_only_the_stagger() -> None:
    started = asyncio.get_running_loop().time()
    result = await first_to_succeed([_hangs, _answers], stagger=0.05)
    assert result == "connected"
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_an_address_that_refuses_hands_over_at_once() -> None:
    started = asyncio.get_running_loop().time()
    assert await first_to_succeed([_refused, _answers], stagger=10.0) == "connected"
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_every_address_failing_raises_the_first_failure_naming_the_others() -> None:
    async def unreachable() -> str:
        raise OSError("network is unreachable")

    with pytest.raises(ConnectionRefusedError) as raised:
        await first_to_succeed([_refused, unreachable], stagger=0.01)
    assert any("network is unreachable" in note for note in raised.value.__notes__)


async def test_the_attempts_left_running_are_cancelled() -> None:
    cancelled = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    assert await first_to_succeed([slow, _answers], stagger=0.01) == "connected"
    assert cancelled.is_set()


async def test_a_second_connection_that_also_succeeded_is_closed() -> None:
    async with serving(echo_forever) as server:
        loop = asyncio.get_running_loop()
        made = [
            await loop.create_connection(asyncio.Protocol, LOOPBACK, server.port)
            for _ in range(2)
        ]
        # Both connections come through in the same turn of the loop.
        both = asyncio.Event()
        loop.call_later(0.05, both.set)

        def attempt(n: int) -> Callable[[], Coroutine[Any, Any, Any]]:
            async def connected() -> Any:
                await both.wait()
                return made[n]

            return connected

        transport, _ = await first_to_succeed([attempt(0), attempt(1)], stagger=0.01)
        for _ in range(100):
            if len(server.open) == 1:
                break
            await asyncio.sleep(0.01)
        assert len(server.open) == 1
        assert not transport.is_closing()
        transport.close()


def test_addresses_take_turns_by_family() -> None:
    v6, v4 = socket.AF_INET6, socket.AF_INET
    infos = [
        (v6, socket.SOCK_STREAM, 6, "", ("2001:db8::1", 443, 0, 0)),
        (v6, socket.SOCK_STREAM, 6, "", ("2001:db8::2", 443, 0, 0)),
        (v4, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443)),
        (v4, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443)),
        (v4, socket.SOCK_STREAM, 6, "", ("192.0.2.2", 443)),
    ]
    assert [address[0] for _, address in interleaved_addresses(infos)] == [
        "2001:db8::1",
        "192.0.2.1",
        "2001:db8::2",
        "192.0.2.2",
    ]


async def test_a_name_is_resolved_and_connected() -> None:
    async with serving(echo_forever) as server, new_http_client() as client:
        response = await client.post(f"http://localhost:{server.port}/", json={"n": 1})
        assert response.json() == {"n": 1}
