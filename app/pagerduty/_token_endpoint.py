"""PagerDuty's token and revocation endpoints, through authlib's `AsyncOAuth2Client`.

authlib's client is itself an httpx2 client that owns (and on exit closes) its transport. We
give it `_SharedClientTransport`, which sends through the application's shared client and
whose close does nothing: the shared client keeps its connection pool, timeouts and mounts,
and is closed only by the application at shutdown.

authlib reads OAuth error answers (`{"error": "invalid_grant"}`) and parses the token; we add
what it does not know: 429 and 5xx mean "retry later", and a refusal without an OAuth error
body is still a refusal.
"""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx2
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from app.pagerduty._http import retry_after, transport_errors
from app.pagerduty.errors import MalformedResponse, OAuthError, RetryLater
from app.pagerduty.hosts import PagerDutyHosts

# PagerDuty takes the client credentials as form fields, not HTTP Basic.
CLIENT_AUTH_METHOD = "client_secret_post"
IDENTITY_SERVICE = "PagerDuty's identity service"

TokenAnswer = Mapping[str, object]


class _SharedClientTransport(httpx2.AsyncBaseTransport):
    def __init__(self, http: httpx2.AsyncClient) -> None:
        self._http = http

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # authlib's client has already applied client authentication and redirect policy.
        shared = await self._http.send(request, stream=True, auth=None, follow_redirects=False)
        return httpx2.Response(
            shared.status_code,
            headers=shared.headers,
            stream=shared.stream,
            extensions=shared.extensions,
        )

    async def aclose(self) -> None:
        """The shared client belongs to the application, which closes it at shutdown."""


@asynccontextmanager
async def _oauth_client(
    http: httpx2.AsyncClient, client_id: str, client_secret: str, redirect_uri: str | None
) -> AsyncIterator[Any]:
    client = AsyncOAuth2Client(
        client_id=client_id,
        client_secret=client_secret,
        token_endpoint_auth_method=CLIENT_AUTH_METHOD,
        revocation_endpoint_auth_method=CLIENT_AUTH_METHOD,
        redirect_uri=redirect_uri,
        transport=_SharedClientTransport(http),
        timeout=http.timeout,
        headers=http.headers,
        # Proxies and .netrc are the shared client's business.
        trust_env=False,
    )
    client.register_compliance_hook("access_token_response", _refuse_unusable)
    client.register_compliance_hook("refresh_token_response", _refuse_unusable)
    async with client:
        yield client


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _oauth_error_body(response: httpx2.Response) -> Mapping[str, object] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return cast(Mapping[str, object], body)
    return None


def _refuse_unusable(response: httpx2.Response) -> httpx2.Response:
    """Runs on the token endpoint's answer before authlib parses it."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise RetryLater(
            f"{IDENTITY_SERVICE} failed (HTTP {status})",
            retry_after=retry_after(response.headers),
            status=status,
        )
    if not response.is_success and _oauth_error_body(response) is None:
        raise OAuthError(
            f"http_{status}",
            sentence=f"{IDENTITY_SERVICE} refused the request (HTTP {status}).",
        )
    return response


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    try:
        async with transport_errors(IDENTITY_SERVICE):
            yield
    except AuthlibOAuthError as exc:
        raise OAuthError(str(exc.error), _text_or_none(exc.description)) from exc
    except httpx2.HTTPStatusError as exc:
        raise OAuthError(
            f"http_{exc.response.status_code}",
            sentence=f"{IDENTITY_SERVICE} refused the request (HTTP {exc.response.status_code}).",
        ) from exc
    except (ValueError, TypeError, OverflowError) as exc:
        # authlib's parsing: a body that is not a JSON object, or an expires_in not a number.
        raise MalformedResponse("the token endpoint's answer could not be read") from exc


async def call_token_endpoint(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    client_id: str,
    client_secret: str,
    *,
    grant_type: str,
    redirect_uri: str | None = None,
    code: str | None = None,
    code_verifier: str | None = None,
    refresh_token: str | None = None,
) -> TokenAnswer:
    url = f"{hosts.identity_url}/oauth/token"
    async with _translated(), _oauth_client(http, client_id, client_secret, redirect_uri) as oauth:
        if grant_type == "refresh_token":
            token = await oauth.refresh_token(url, refresh_token=refresh_token)
        else:
            token = await oauth.fetch_token(
                url, grant_type=grant_type, code=code, code_verifier=code_verifier
            )
    return cast(TokenAnswer, dict(token))


async def revoke(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    client_id: str,
    client_secret: str,
    *,
    token: str,
) -> None:
    url = f"{hosts.identity_url}/oauth/revoke"
    async with _translated(), _oauth_client(http, client_id, client_secret, None) as oauth:
        response = cast(httpx2.Response, await oauth.revoke_token(url, token=token))
    _refuse_unusable(response)
    if not response.is_success:
        body = _oauth_error_body(response) or {}
        raise OAuthError(str(body.get("error")), _text_or_none(body.get("error_description")))
