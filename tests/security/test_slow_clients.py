"""Slow senders, as `pdconnect serve` meets them: a real server in a subprocess on the test
database, spoken to over loopback sockets from many loopback addresses (127.0.x.y are all this
machine). A whole request must arrive in time, keys are checked before bodies are read, one
address holds few connections, and a thousand connections dribbling their bodies cost another
tenant's alert nothing."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from app.web.protocol import CONCURRENCY_LIMIT
from tests.conftest import ADMIN_TOKEN
from tests.security.served import pdconnect_serve

REQUEST_TIMEOUT = 4.0
DROP_IN_BODY = 2.0
PER_CLIENT = 10
# Bounds a wait for something that must happen; never a measure of speed.
PATIENCE = 30.0
# The server's clock for a request starts when it accepts the connection, a moment before the
# client's own clock starts: a deadline can look that much short from here.
EARLY = 0.5


@dataclass
class Served:
    port: int
    # A tenant sending promptly, and one whose key the slow connections use.
    prompt_key: str
    slow_key: str
    tenants: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _tenant(http: httpx2.Client, name: str) -> tuple[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    created = http.post("/admin/v1/tenants", json={"name": name}, headers=admin)
    assert created.status_code == 201, created.text
    tenant = created.json()
    service = http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Ops", "routing_key": secrets.token_hex(16), "api": "v2"},
        headers=admin,
    )
    assert service.status_code == 201, service.text
    return tenant["id"], tenant["ingest_key"]


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[Served]:
    """`pdconnect serve` with short deadlines (to test them quickly), a small per-address cap,
    no rate limit (the slow connections must not be refused for speed) and no dispatcher."""
    with serve(
        database_url,
        PDCONNECT_REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT),
        PDCONNECT_DROP_IN_BODY_SECONDS=str(DROP_IN_BODY),
    ) as server:
        yield server


@pytest.fixture(scope="module")
def served_as_shipped(database_url: str) -> Iterator[Served]:
    """As `served`, with the deadlines as shipped: the flood meets what production has."""
    with serve(database_url) as server:
        yield server


@contextmanager
def serve(database_url: str, **settings: str) -> Iterator[Served]:
    limits = {
        "PDCONNECT_INGEST_RATE_LIMIT": "0",
        "PDCONNECT_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
    }
    with (
        pdconnect_serve(database_url, **{**limits, **settings}) as port,
        httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=PATIENCE) as http,
    ):
        prompt_id, prompt_key = _tenant(http, "Prompt")
        slow_id, slow_key = _tenant(http, "Slow")
        yield Served(port, prompt_key, slow_key, [prompt_id, slow_id])
        # The database is the test run's, not rolled back: leave nothing behind.
        for tenant_id in (prompt_id, slow_id):
            http.delete(
                f"/admin/v1/tenants/{tenant_id}",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


async def answer_and_close(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any], float]:
    """The one answer on a connection the server then closes: status, JSON body, and when."""
    async with asyncio.timeout(PATIENCE):
        raw = await reader.read()
    answered = time.monotonic()
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body), answered


async def test_a_wrong_key_in_a_header_is_refused_before_the_body(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    # A megabyte announced, none of it sent: the answer cannot have waited for it.
    writer.write(
        head(
            "POST",
            "/v1/alerts",
            "Authorization: Bearer pdc_" + "x" * 32,
            "Content-Type: application/json",
            "Content-Length: 1000000",
        )
    )
    status, body, _ = await answer_and_close(reader)
    writer.close()
    assert status == 401
    assert "Bearer" in body["error"]["message"]


async def test_a_wrong_key_in_the_path_is_refused_before_the_body(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        head(
            "POST",
            "/k/pdc_" + "x" * 32 + "/v2/enqueue",
            "Content-Type: application/json",
            "Content-Length: 100000",
        )
    )
    status, body, _ = await answer_and_close(reader)
    writer.close()
    # PagerDuty's own answer to an unknown routing key.
    assert status == 400
    assert body["errors"] == ["Invalid routing key"]


async def test_a_drop_in_body_has_a_short_time_to_arrive(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    started = time.monotonic()
    writer.write(
        head("POST", "/v2/enqueue", "Content-Type: application/json", "Content-Length: 1000")
        + b'{"routing_key": '
    )
    status, body, answered = await answer_and_close(reader)
    writer.close()
    assert status == 408
    assert body["status"] == "invalid event"
    assert "PDCONNECT_DROP_IN_BODY_SECONDS" in body["errors"][0]
    # Its own limit, well before the whole request's.
    assert DROP_IN_BODY - EARLY <= answered - started < REQUEST_TIMEOUT


async def test_a_whole_request_must_arrive_in_time(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    started = time.monotonic()
    writer.write(
        head(
            "POST",
            "/v1/alerts",
            f"Authorization: Bearer {served.slow_key}",
            "Content-Type: application/json",
            "Content-Length: 1000",
        )
    )

    async def dribble() -> None:
        # A byte every half second: never idle, never done.
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.5)

    dribbling = asyncio.create_task(dribble())
    try:
        status, body, answered = await answer_and_close(reader)
    finally:
        dribbling.cancel()
        writer.close()
    assert status == 408
    assert "PDCONNECT_REQUEST_TIMEOUT_SECONDS" in body["error"]["message"]
    assert REQUEST_TIMEOUT - EARLY <= answered - started < REQUEST_TIMEOUT + PATIENCE / 3


async def test_one_address_holds_only_so_many_connections(served: Served) -> None:
    held = [
        await asyncio.open_connection("127.0.0.1", served.port, local_addr=("127.0.0.77", 0))
        for _ in range(PER_CLIENT)
    ]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", served.port, local_addr=("127.0.0.77", 0)
    )
    status, body, _ = await answer_and_close(reader)
    writer.close()
    assert status == 429
    assert f"at most {PER_CLIENT} at once" in body["error"]["message"]
    assert "PDCONNECT_MAX_CONNECTIONS_PER_CLIENT" in body["error"]["message"]
    # Other addresses are served all the while.
    async with httpx2.AsyncClient(base_url=served.url, timeout=PATIENCE) as http:
        assert (await http.get("/healthz")).status_code == 200
    for _, other in held:
        other.close()


# The flood (tests/security/slow_flood.py, in a process of its own): as many slow connections
# as a web process holds, from many addresses (each under its cap, so only the deadlines and
# the shedding of the slowest protect the others), kept up for a while: whatever the server
# closes is opened again at once.
SLOW_CONNECTIONS = CONCURRENCY_LIMIT
PER_ADDRESS = PER_CLIENT - 2
FLOOD_SECONDS = 12.0
# The promise: another tenant's alert is accepted within this, however many are dribbling.
PROMPT_SECONDS = 2.0


async def prompt_alerts(
    served: Served, seconds: float, tag: str
) -> tuple[list[float], Counter[int]]:
    """Alerts of the prompt tenant, one after another for `seconds`, each on a new connection
    (it has to find a place among the slow ones): how long each took, and the answers."""
    took: list[float] = []
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        async with httpx2.AsyncClient(base_url=served.url, timeout=PATIENCE) as http:
            sent = time.monotonic()
            answer = await http.post(
                "/v1/alerts",
                json={"summary": f"prompt {tag} {len(took)}", "dedup_key": f"{tag}-{len(took)}"},
                headers={"Authorization": f"Bearer {served.prompt_key}"},
            )
            took.append(time.monotonic() - sent)
            statuses[answer.status_code] += 1
        await asyncio.sleep(0.25)
    return sorted(took), statuses


async def test_a_thousand_slow_connections_do_not_delay_another_tenant(
    served_as_shipped: Served,
) -> None:
    served = served_as_shipped
    quiet, _ = await prompt_alerts(served, 2.0, "quiet")
    flood = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.security.slow_flood",
        *("--port", str(served.port), "--key", served.slow_key),
        *("--connections", str(SLOW_CONNECTIONS), "--per-address", str(PER_ADDRESS)),
        *("--seconds", str(FLOOD_SECONDS)),
        stdout=asyncio.subprocess.PIPE,
    )
    assert flood.stdout is not None
    try:
        async with asyncio.timeout(PATIENCE * 2):
            assert (await flood.stdout.readline()).strip() == b"full"
        took, statuses = await prompt_alerts(served, FLOOD_SECONDS - 1, "flood")
        async with asyncio.timeout(PATIENCE * 2):
            summary = json.loads(await flood.stdout.readline())
            await flood.wait()
    finally:
        if flood.returncode is None:
            flood.kill()
            await flood.wait()
    # The measurement, for `pytest -s`.
    print(
        f"\nquiet: {len(quiet)} alerts, median {quiet[len(quiet) // 2] * 1000:.0f} ms; "
        f"with {SLOW_CONNECTIONS} slow connections ({summary}): {len(took)} alerts "
        f"{dict(statuses)}, median {took[len(took) // 2] * 1000:.0f} ms, "
        f"max {took[-1] * 1000:.0f} ms"
    )
    assert statuses == {202: len(took)}
    assert took[-1] < PROMPT_SECONDS
    # The flood was real: the slow connections stayed open around the prompt ones (the drop-ins,
    # opened together, reach their deadline together and come back a second later).
    assert summary["open_mean"] > SLOW_CONNECTIONS * 0.9
