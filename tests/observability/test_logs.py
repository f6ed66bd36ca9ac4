"""Log lines are JSON objects that carry the request they belong to and no secret."""

from __future__ import annotations

import json
import logging
import random
import re
import subprocess
import sys
from datetime import UTC, datetime

import httpx2
import pytest

from app.observability.logs import (
    JsonFormatter,
    TextFormatter,
    bound,
    logging_config,
    message_of,
    redact,
)

ROUTING_KEY = "e93facc04764012d7bfb002500d5d1a6"
EVENT_ID = "0f8e8c1e-1234-4abc-9def-0123456789ab"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /auth/link?token=IjU5Mj.awNg4Q.Jln-5hglP&next=1", "IjU5Mj.awNg4Q.Jln-5hglP"),
        ("key pdc_Zm9vYmFy_baz-qux used", "pdc_Zm9vYmFy_baz-qux"),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        ("Authorization: Token token=y_abc12345678", "y_abc12345678"),
        (f'{{"routing_key": "{ROUTING_KEY}", "x": 1}}', ROUTING_KEY),
        (f"sent to {ROUTING_KEY} at noon", ROUTING_KEY),
        ("{'access_token': 'pdus+_0XABCDE_" + EVENT_ID + "'}", "pdus+_0XABCDE_"),
        ("refresh_token=pdus+_1XABCDE_x&grant_type=refresh_token", "pdus+_1XABCDE_x"),
        ('"secret": "whsec with spaces inside"', "whsec with spaces inside"),
        ("code=Qk3x9&state=abc", "Qk3x9"),
        ("signature v1=" + "ab12" * 16, "ab12" * 16),
        ("a webhook secret Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OQ here", "Zm9vYmFyYmF6cXV4"),
    ],
)
def test_secrets_are_redacted(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


@pytest.mark.parametrize(
    "line",
    [
        f"event {EVENT_ID} delivered in 12ms",
        'File "/srv/pdconnect/.venv/lib/python3.11/site-packages/starlette/routing.py", line 73',
        "claiming events failed: ConnectionDoesNotExistError",
        "POST /v1/alerts 202 6.8ms",
        "applied migration 0001_tenants_and_installations",
        "test_v2_events_api_and_v1_drop_in_are_accepted",
    ],
)
def test_ordinary_lines_are_kept_whole(line: str) -> None:
    assert redact(line) == line


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("pdconnect.test", logging.INFO, __file__, 1, message, args, None)


def test_json_lines_carry_the_bound_context_and_are_redacted() -> None:
    with bound(request_id="r-1"), bound(event_id=EVENT_ID):
        line = JsonFormatter().format(_record("sent %s", f"to {ROUTING_KEY}"))
    parsed = json.loads(line)
    assert parsed["level"] == "info"
    assert parsed["logger"] == "pdconnect.test"
    assert parsed["message"] == "sent to [redacted]"
    assert parsed["request_id"] == "r-1"
    assert parsed["event_id"] == EVENT_ID
    assert "request_id" not in json.loads(JsonFormatter().format(_record("outside")))


def test_exceptions_are_one_json_line_and_redacted() -> None:
    try:
        raise ValueError(f"bad key pdc_{ROUTING_KEY}")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert "ValueError: bad key pdc_[redacted]" in parsed["exception"]


def test_text_format_is_redacted_too() -> None:
    with bound(request_id="r-2"):
        line = TextFormatter().format(_record("token=abc123"))
    assert line.endswith("token=[redacted] [request_id=r-2]")


def test_a_wrong_log_setting_is_named() -> None:
    with pytest.raises(ValueError, match="PDCONNECT_LOG_FORMAT"):
        logging_config("xml")
    with pytest.raises(ValueError, match="PDCONNECT_LOG_LEVEL"):
        logging_config("json", "loud")
    failed = subprocess.run(
        [sys.executable, "-m", "app.cli", "keygen"],
        env={"PDCONNECT_LOG_FORMAT": "xml", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 2
    assert "PDCONNECT_LOG_FORMAT must be json or text" in failed.stderr


def test_the_access_log_can_be_switched_off_alone() -> None:
    off = logging_config("text", "info", access_log="off")
    assert off["loggers"]["pdconnect.access"]["level"] == "WARNING"
    # The rest of pdconnect still logs at the chosen level.
    assert off["root"]["level"] == "INFO"
    assert "pdconnect.access" not in logging_config("text", "info")["loggers"]
    with pytest.raises(ValueError, match="PDCONNECT_ACCESS_LOG must be on or off"):
        logging_config("json", "info", access_log="maybe")


def test_a_terminal_gets_short_text_lines_and_a_pipe_json() -> None:
    """The default format follows stderr: JSON when it is not a terminal (a pipe here)."""
    logged = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from app.cli import default_log_format; print(default_log_format())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert logged.stdout.strip() == "json"
    line = TextFormatter().format(_record("hello"))
    # Time of day, level, logger, message: no date, no JSON.
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    \S+: hello", line), line


class Formatted(logging.Handler):
    """Formats as it receives, as the stderr handler does: inside the request's context."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_every_answer_and_its_log_line_carry_one_request_id(
    client: httpx2.AsyncClient,
) -> None:
    handler, access = Formatted(), logging.getLogger("pdconnect.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        first = await client.get("/healthz")
        second = await client.get("/readyz")
        kept = await client.get("/healthz", headers={"X-Request-Id": "vendor-42.a"})
        forged = await client.get("/healthz", headers={"X-Request-Id": 'x" "admin":true'})
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    ids = [r.headers["x-request-id"] for r in (first, second, kept, forged)]
    assert ids[0] != ids[1]
    assert ids[2] == "vendor-42.a"
    # A caller's id that could forge log structure is replaced by one of ours.
    assert len(ids[3]) == 16
    assert ids[3].isalnum()
    assert [line["request_id"] for line in handler.lines] == ids
    assert handler.lines[1]["message"].startswith("GET /readyz 200")


def _general_encoding(record: logging.LogRecord, context: dict[str, object]) -> str:
    """A line as the formatter writes any record: every field through one JSON encoder."""
    line = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": message_of(record),
        **context,
    }
    return json.JSONEncoder(ensure_ascii=False, default=str).encode(line)


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"request_id": "a1b2c3d4e5f60718"},
        {"request_id": "r1", "event_id": EVENT_ID},
        {"note": 'quotes " and \\ backslash, a tab\t, a newline\n and é, 中, \u2028'},
        {"control": "\x00\x1f\x7f"},
        # Not text, or a name the line begins with: the general encoding itself.
        {"message": "a context field named like a fixed one"},
        {"attempt": 3},
    ],
)
@pytest.mark.parametrize(
    "created",
    [0.0, 1.0, 1764979200.0, 1764979200.0005, 1764979200.0129999, 1764979200.9999996],
)
def test_a_line_reads_as_the_general_encoding_writes_it(
    context: dict[str, object], created: float
) -> None:
    record = _record("POST %s %d %s", "/v1/alerts", 202, "\u00e9 \"q\" \\ \n")
    record.created = created
    record.levelname = "INFO"
    with bound(**context):  # type: ignore[arg-type]
        assert JsonFormatter().format(record) == _general_encoding(record, context)


def test_many_times_of_day_read_as_the_general_encoding_writes_them() -> None:
    formatter = JsonFormatter()
    rng = random.Random(7)
    for _ in range(20000):
        record = _record("tick")
        record.created = rng.uniform(0, 4_000_000_000)
        assert formatter.format(record) == _general_encoding(record, {})
