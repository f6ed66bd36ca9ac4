"""What every REST API call shares: PagerDuty's error bodies, bearer authentication, the
per-app-per-account rate limit, and classic offset paging.

Error codes chosen, from PagerDuty's published table:

| status | body `error.message`     | `code` | when |
|--------|--------------------------|--------|------|
| 400    | Invalid Input Provided   | 2001   | a body or parameter is wrong (details in `errors`) |
| 400    | Arguments Caused Error   | 2002   | offset + limit over 10000 (PagerDuty's exact text) |
| 401    | Unauthorized             | 2006   | no, unknown, expired or revoked token |
| 403    | Access Denied            | 2010   | the token lacks the `read`/`write` scope needed |
| 404    | Not Found                | 2100   | unknown path, or an object of another account |
| 429    | Rate Limit Exceeded      | 2020   | over the per-minute limit, with ratelimit-* headers |
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pdsandbox.models import Account, Grant, Region
from pdsandbox.state import SandboxState

_T = TypeVar("_T")

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
MAX_OFFSET_PLUS_LIMIT = 10000
_OFFSET_LIMIT_TEXT = (
    "Offset+limit exceeds maximum allowed value of 10000. Please try to refine your search "
    "to reduce the returned set of records below this number, like adding a date range."
)


class RestError(Exception):
    def __init__(
        self, status: int, message: str, code: int, errors: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.errors = status, message, code, errors

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        error: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            error["errors"] = self.errors
        return JSONResponse({"error": error}, status_code=self.status, headers=headers)


def invalid(*errors: str) -> RestError:
    return RestError(400, "Invalid Input Provided", 2001, list(errors))


def not_found() -> RestError:
    return RestError(404, "Not Found", 2100)


def unauthorized() -> RestError:
    return RestError(401, "Unauthorized", 2006)


def rate_limited() -> RestError:
    return RestError(429, "Rate Limit Exceeded", 2020)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the live grant behind the bearer token, and its account."""

    grant: Grant
    account: Account
    region: Region  # the region prefix the call came in on


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int
    total: bool

    def window(self, items: list[_T]) -> list[_T]:
        return items[self.offset : self.offset + self.limit]

    def envelope(self, key: str, shaped: list[dict[str, Any]], count: int) -> dict[str, Any]:
        """PagerDuty's list body for one page (`shaped`) out of `count` matches."""
        return {
            key: shaped,
            "limit": self.limit,
            "offset": self.offset,
            "more": self.offset + len(shaped) < count,
            "total": count if self.total else None,
        }

    def of(self, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return self.envelope(key, self.window(items), len(items))


def parse_page(request: Request) -> Page:
    params = request.query_params
    limit = _non_negative_int(params.get("limit"), "limit", DEFAULT_LIMIT)
    offset = _non_negative_int(params.get("offset"), "offset", 0)
    if limit == 0:
        raise invalid("limit must be greater than 0")
    limit = min(limit, MAX_LIMIT)  # PagerDuty caps silently and echoes the limit it used
    if offset + limit > MAX_OFFSET_PLUS_LIMIT:
        raise RestError(400, "Arguments Caused Error", 2002, [_OFFSET_LIMIT_TEXT])
    return Page(limit, offset, params.get("total", "").lower() == "true")


def parse_time(request: Request, name: str) -> float | None:
    """An ISO 8601 date-time query parameter as a timestamp; None when absent. A time without
    a zone is UTC, the sandbox accounts' time zone (PagerDuty reads it in the account's)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError as exc:
        raise invalid(f"{name} must be an ISO 8601 date-time, got {raw!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise invalid(f"{name} must be true or false")
    return raw.lower() == "true"


def id_list(request: Request, name: str) -> set[str] | None:
    """The values of an array parameter such as `service_ids[]`; None when it is absent.
    PagerDuty's clients send `name[]` repeated (go-pagerduty, the Terraform provider) and
    some send a comma list in one; both are read."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    return {v.strip() for raw in values for v in raw.split(",") if v.strip()}


def enum_list(request: Request, name: str, allowed: tuple[str, ...]) -> set[str] | None:
    """An array parameter whose values the document enumerates: anything else is a 400."""
    values = id_list(request, name)
    if values is None:
        return None
    unknown = sorted(values - set(allowed))
    if unknown:
        raise invalid(f"{name} must be among {', '.join(allowed)}; got {', '.join(unknown)}")
    return values


def _non_negative_int(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise invalid(f"{name} must be a non-negative integer")
    return int(raw)


Handler = Callable[[Request, Caller], Awaitable[Response]]


class RestGate:
    """Wraps handlers with authentication, scope checks and the rate limit."""

    def __init__(self, state: SandboxState, region: Region) -> None:
        self.state = state
        self.region = region

    def guard(self, handler: Handler, scope: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                caller = self._authenticate(request)
            except RestError as exc:
                return exc.response()
            decision = self.state.rest_limiter.hit(
                (caller.grant.client_id, caller.account.id),
                self.state.controls.rest_rate_limit,
                self.state.now(),
            )
            headers = decision.headers()
            if not decision.allowed:
                return rate_limited().response(headers)
            try:
                _require_scope(caller.grant, scope)
                response = await handler(request, caller)
            except RestError as exc:
                response = exc.response()
            response.headers.update(headers)
            return response

        return endpoint

    def _authenticate(self, request: Request) -> Caller:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized()
        grant = self.state.oauth.authenticate(token.strip())
        if grant is None:
            raise unauthorized()
        account = self.state.accounts[grant.account_id]
        # PagerDuty forwards EU tokens that arrive at the US host; the EU host knows only EU.
        if self.region is Region.EU and account.region is not Region.EU:
            raise unauthorized()
        return Caller(grant, account, self.region)


def _require_scope(grant: Grant, needed: str) -> None:
    granted = set(grant.scope.split())
    ok = "write" in granted if needed == "write" else bool(granted & {"read", "write"})
    if not ok:
        raise RestError(
            403, "Access Denied", 2010, [f"The access token lacks the '{needed}' scope."]
        )


async def json_object(request: Request, key: str) -> dict[str, Any]:
    """The object under `key` in a JSON request body, PagerDuty's "wrapped entity"."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise invalid("The request body is not valid JSON.") from exc
    inner = body.get(key) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        raise invalid(f"The body must be a JSON object with a '{key}' object.")
    return inner
