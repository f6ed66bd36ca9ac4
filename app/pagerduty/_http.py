"""Turning PagerDuty's HTTP answers and httpx2's failures into our errors: the one place
where status codes and transport exceptions meet the error tree."""

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime

import httpx2

from app.pagerduty._wire import read_json
from app.pagerduty.errors import (
    Forbidden,
    InvalidRequest,
    MalformedResponse,
    NotFound,
    PagerDutyError,
    RetryLater,
    Unauthorized,
)

# A wait longer than this is more likely a bad header than PagerDuty's real intent.
MAX_RETRY_AFTER_SECONDS = 3600.0


@asynccontextmanager
async def transport_errors(what: str) -> AsyncIterator[None]:
    """Timeouts and connection failures mean PagerDuty never answered: retry later.

    The foreign message is left out of ours: it can quote the request."""
    try:
        yield
    except httpx2.TimeoutException as exc:
        raise RetryLater(f"{what} did not answer in time ({type(exc).__name__})") from exc
    except httpx2.RequestError as exc:
        raise RetryLater(f"{what} could not be reached ({type(exc).__name__})") from exc


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return seconds


def _http_date_delay(value: str, date_header: str | None) -> float | None:
    # An HTTP-date is measured against the server's own Date header, which keeps clock skew
    # between us and PagerDuty out of the answer; without one the date tells us nothing.
    if date_header is None:
        return None
    try:
        return (parsedate_to_datetime(value) - parsedate_to_datetime(date_header)).total_seconds()
    except (TypeError, ValueError):
        return None


def retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds to wait from `ratelimit-reset`, else `Retry-After`; None when neither is usable."""
    delay: float | None = None
    reset = headers.get("ratelimit-reset")
    if reset is not None:
        delay = _seconds(reset)
    if delay is None and (header := headers.get("retry-after")) is not None:
        delay = _seconds(header)
        if delay is None:
            delay = _http_date_delay(header, headers.get("date"))
    if delay is None:
        return None
    return min(max(delay, 0.0), MAX_RETRY_AFTER_SECONDS)


def _error_body(response: httpx2.Response) -> tuple[str, tuple[str, ...], int | None]:
    """PagerDuty's `{"error": {"message", "code", "errors": [...]}}`, tolerating anything."""
    try:
        body = read_json(response)
    except MalformedResponse:
        return "", (), None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return error, (), None
    if not isinstance(error, dict):
        return "", (), None
    message = error.get("message")
    code = error.get("code")
    details = error.get("errors")
    return (
        message if isinstance(message, str) else "",
        tuple(d for d in details if isinstance(d, str)) if isinstance(details, list) else (),
        code if isinstance(code, int) and not isinstance(code, bool) else None,
    )


def error_for(response: httpx2.Response, what: str = "PagerDuty") -> PagerDutyError | None:
    """The error a non-2xx answer means, or None for a 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    if status == 429:
        return RetryLater(
            f"{what} is rate limiting requests (HTTP 429)",
            retry_after=retry_after(response.headers),
            status=status,
        )
    if status >= 500:
        return RetryLater(
            f"{what} failed (HTTP {status})",
            retry_after=retry_after(response.headers),
            status=status,
        )
    if status < 400:
        return MalformedResponse(f"unexpected HTTP {status}", status=status)
    message, details, code = _error_body(response)
    if status == 401:
        return Unauthorized(message)
    if status == 403:
        return Forbidden(message)
    if status == 404:
        return NotFound(message)
    # 400 and 422 are bad input, 402 a feature the account lacks: none improves by waiting.
    return InvalidRequest(message, details, status=status, code=code)


def raise_for_status(response: httpx2.Response, what: str = "PagerDuty") -> None:
    error = error_for(response, what)
    if error is not None:
        raise error
