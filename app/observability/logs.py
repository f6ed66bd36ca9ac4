"""Structured logs: one JSON object per line on stderr, with the request or event it concerns,
and every secret redacted.

Redaction is the second line of defence. The first is that no code logs a body, a header, a
query string or a secret; but tracebacks quote values and third-party libraries log URLs, so
every line is scrubbed once more on its way out, whatever logger wrote it: ingest keys
(`pdc_…`), PagerDuty tokens (`pdus+_…`), `Authorization` values, `name=value` pairs whose name
says secret (token, code, state, secret, routing_key…), and any long opaque run of letters and
digits such as a 32-character routing key or a webhook secret. UUIDs are kept: they are our
ids, and without them a log cannot be followed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from itertools import pairwise
from json.encoder import encode_basestring as _quoted
from types import MappingProxyType
from typing import Any

REDACTED = "[redacted]"
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")

# What the current task is working for: a request id, an event id. Asyncio copies context
# into the tasks a request or a delivery starts, so their lines carry it too.
_context: ContextVar[Mapping[str, str]] = ContextVar(
    "pdconnect_log_context", default=MappingProxyType({})
)

# Names of secrets, whose values are to be found and hidden.
_SECRET_NAMES = (
    r"access_token|refresh_token|id_token|client_secret|code_verifier|secret|password|token|"  # noqa: S105
    r"routing_key|service_key|integration_key|ingest_key|api_key|code|state|signature"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"pdc_[A-Za-z0-9_\-]+"), "pdc_" + REDACTED),
    (re.compile(r"pdus\+_[A-Za-z0-9_\-+]+"), "pdus+_" + REDACTED),
    (re.compile(r"(?i)\b(bearer|token token=)\s*[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + REDACTED),
    # name=value, as in query strings and forms
    (re.compile(rf"(?i)\b({_SECRET_NAMES})=[^&\s'\"]+"), r"\1=" + REDACTED),
    # "name": "value", as in JSON and Python reprs
    (
        re.compile(rf"(?i)(['\"])({_SECRET_NAMES})\1(\s*:\s*)(['\"])(?:(?!\4).)*\4"),
        r"\1\2\1\3\4" + REDACTED + r"\4",
    ),
)
_OPAQUE = re.compile(r"[A-Za-z0-9_+=\-]{24,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _opaque(match: re.Match[str]) -> str:
    text = match.group(0)
    if _UUID.fullmatch(text):
        return text
    # Random secrets mix letters and digits throughout (hex keys) or mix cases and digits
    # (base64); names such as 0001_tenants_and_installations or test_v2_events do neither.
    switches = sum(
        a.isdigit() != b.isdigit() for a, b in pairwise(text) if a.isalnum() and b.isalnum()
    )
    mixed = any(c.isupper() for c in text) and any(c.islower() for c in text)
    if switches >= 4 or (mixed and any(c.isdigit() for c in text)):
        return REDACTED
    return text


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _OPAQUE.sub(_opaque, text)


@contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Within this block (and the tasks it starts), every line carries these fields."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


# Set on a record (`extra={PRE_REDACTED: True}`) whose message its writer built only from
# values it redacted itself: the access log's line per request, whose one variable part, the
# path, is redacted once per distinct path (app/web/access_log.py) rather than on every line.
PRE_REDACTED = "pdconnect_pre_redacted"


def message_of(record: logging.LogRecord) -> str:
    message = record.getMessage()
    return message if record.__dict__.get(PRE_REDACTED) else redact(message)


# One encoder for every line: `json.dumps` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
# The fields every line begins with, in their order; a context field of the same name would
# take its place in the line (a dict keeps the first position), so such lines take the long way.
_FIXED = frozenset({"time", "level", "logger", "message"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line. A line whose fields are all text (nearly all: the access line
    per request, a delivery's lines) is written field by field with the encoder's own string
    escaping, and its time from a per-second stamp: the same text as the general encoding
    below, in about a third of the time, which a line per request makes worth having."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The second last stamped and its text, replaced as one value: a formatter shared by
        # threads never pairs one second with another's text.
        self._stamped = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        context = _context.get()
        if record.exc_info or not all(
            type(v) is str and k not in _FIXED for k, v in context.items()
        ):
            return self._format_any(record, context)
        parts = [
            '{"time": "',
            self._time(record.created),
            '", "level": ',
            _quoted(record.levelname.lower()),
            ', "logger": ',
            _quoted(record.name),
            ', "message": ',
            _quoted(message_of(record)),
        ]
        for name, value in context.items():
            parts += (", ", _quoted(name), ": ", _quoted(value))
        parts.append("}")
        return "".join(parts)

    def _time(self, created: float) -> str:
        """`datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`: the
        microseconds rounded as `fromtimestamp` rounds them, then cut to milliseconds."""
        second = int(created)
        micro = round((created - second) * 1_000_000)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        stamped = self._stamped
        if stamped[0] != second:
            stamped = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
            self._stamped = stamped
        return f"{stamped[1]}.{micro // 1000:03d}+00:00"

    def _format_any(self, record: logging.LogRecord, context: Mapping[str, Any]) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message_of(record),
            **context,
        }
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return _ENCODER.encode(line)


class TextFormatter(logging.Formatter):
    """Short lines for a person at a terminal: the time of day, the level, where, what."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _context.get().items())
        text = super().format(record)
        return redact(f"{text} [{fields}]" if fields else text)


def lean_records() -> None:
    """Records without what no formatter of ours prints: the caller's file and line (found by
    walking the stack on every call), the thread's and the process's names. Logging's own
    documentation lists these switches for services that log often; ours logs a line per
    request. Called once per process, before it serves."""
    logging._srcfile = None  # the switch logging documents for this
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def logging_config(
    log_format: str = "json", level: str = "info", *, access_log: str = "on"
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the CLI and for every uvicorn worker process (which
    re-applies it after spawning, so a dict, not objects, is what travels). `access_log`
    "off" leaves out the line per request (app/web/access_log.py), not its metrics."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"PDCONNECT_LOG_FORMAT must be json or text, not {log_format!r}")
    if level not in LOG_LEVELS:
        raise ValueError(f"PDCONNECT_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    if access_log not in ("on", "off"):
        raise ValueError(f"PDCONNECT_ACCESS_LOG must be on or off, not {access_log!r}")
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"pdconnect": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "app.observability.log_handler.TurnBufferedHandler",
                "formatter": "pdconnect",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's loggers come with handlers of their own; route them through ours.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # Ours replaces it (app/web/access_log.py): uvicorn's prints whole request lines.
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            # Start-up chatter, and for `databases` every connect, is noise at INFO.
            **({"pdconnect.access": quiet} if access_log == "off" else {}),
            "pgserver": quiet,
            "databases": quiet,
            # A line per HTTP request made; the dispatcher's own lines say what matters.
            "httpx2": quiet,
            "httpcore2": quiet,
        },
    }
