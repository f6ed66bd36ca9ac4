"""The limits as served by `pdconnect serve`: a real uvicorn in a subprocess on loopback, on the
test database, spoken to over sockets. Uvicorn refuses an oversized head itself; the app answers
the lower header limits and body limits in its JSON before any body is read."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx2
import pytest

from app.web.limits import MAX_HEADER_BYTES
from app.web.protocol import HEAD_MAX_BYTES
from app.web.routing import DEFAULT_MAX_BYTES
from tests.conftest import ADMIN_TOKEN
from tests.security.served import pdconnect_serve

READY_TIMEOUT = 60.0
# Bounds a wait for an answer; never a measure of speed.
PATIENCE = 30.0


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[int]:
    """The port of a `pdconnect serve` on the test database (tests/security/served.py)."""
    with pdconnect_serve(database_url) as port:
        yield port


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; read one response (to the connection's end or Content-Length)."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(data)
        raw = b""
        while b"\r\n\r\n" not in raw:
            piece = sock.recv(65536)
            assert piece, raw
            raw += piece
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "-1"))
        while len(body) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
    return int(status_line.split()[1]), headers, body


def request_head(method: str, path: str, *lines: str) -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]
    return "\r\n".join(head).encode("latin-1")


def test_uvicorn_refuses_a_head_over_its_limit(served: int) -> None:
    status, headers, body = exchange(
        served, request_head("GET", "/healthz", "X-Big: " + "a" * HEAD_MAX_BYTES)
    )
    assert status == 431
    assert headers["connection"] == "close"
    assert body == b"Request header fields too large."


def test_the_app_answers_its_own_header_limit_in_json(served: int) -> None:
    status, headers, body = exchange(
        served,
        request_head(
            "GET",
            "/admin/v1/tenants",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "X-Big: " + "a" * MAX_HEADER_BYTES,
        ),
    )
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert "header fields" in json.loads(body)["error"]["message"]


def test_an_announced_oversize_body_is_refused_before_it_is_sent(served: int) -> None:
    status, _, body = exchange(
        served,
        request_head(
            "POST",
            "/admin/v1/tenants",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "Content-Type: application/json",
            "Content-Length: 1073741824",
        ),
    )
    assert status == 413
    assert json.loads(body) == {
        "error": {"message": f"request body is larger than {DEFAULT_MAX_BYTES} bytes"}
    }


def test_a_chunked_body_is_cut_off_at_the_limit(served: int) -> None:
    chunk = b"%x\r\n%s\r\n" % (4096, b" " * 4096)
    chunks = chunk * (DEFAULT_MAX_BYTES // 4096 + 1) + b"0\r\n\r\n"
    head = request_head(
        "POST",
        "/admin/v1/tenants",
        f"Authorization: Bearer {ADMIN_TOKEN}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
    )
    status, _, body = exchange(served, head + chunks)
    assert status == 413
    assert "larger than" in json.loads(body)["error"]["message"]


def test_requests_within_the_limits_are_served(served: int) -> None:
    with httpx2.Client(base_url=f"http://127.0.0.1:{served}", timeout=PATIENCE) as http:
        created = http.post(
            "/admin/v1/tenants",
            json={"name": "Served"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Some": "a" * 4096},
        )
        assert created.status_code == 201
        # The database is the test run's, not rolled back: leave nothing behind.
        deleted = http.delete(
            f"/admin/v1/tenants/{created.json()['id']}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert deleted.status_code == 204
