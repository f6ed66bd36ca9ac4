"""`/identity/oauth/token`, `/identity/oauth/revoke`, the JWKS and OpenID discovery.

The client authenticates with `client_id` and `client_secret` in the form body or with HTTP
Basic, never both (RFC 6749 section 2.3). Answers copy PagerDuty's documented bodies: the
code exchange brings `client_info` and a signed `id_token`; a refresh brings only new access
and refresh tokens. The id_token's `iss` is on the app host, named by the discovery document on
the identity host, as PagerDuty's is (`SandboxConfig.issuer`).

PagerDuty documents no revoke endpoint: `/oauth/revoke` answers 404, as an unknown path does,
unless the `revoke_endpoint` control says "present" (`pdsandbox.controls.switches`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any
from urllib.parse import unquote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from pdsandbox import ids
from pdsandbox.config import SandboxApp
from pdsandbox.identity.oauth_store import OAuthError, TokenPair
from pdsandbox.state import SandboxState

ID_TOKEN_LIFETIME = 3600
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def oauth_error(exc: OAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["www-authenticate"] = 'Basic realm="oauth"'
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, status_code=exc.status, headers=headers)


class TokenEndpoints:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def token(self, request: Request) -> Response:
        try:
            form = await _form(request)
            app = self._client(request, form)
            grant_type = _field(form, "grant_type")
            if grant_type == "authorization_code":
                return self._exchange_code(app, form)
            if grant_type == "refresh_token":
                return self._refresh(app, form)
            if grant_type is None:
                raise OAuthError("invalid_request", "grant_type is required.")
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is unsupported.")
        except OAuthError as exc:
            return oauth_error(exc)

    async def revoke(self, request: Request) -> Response:
        if not self.state.controls.serves_revoke:
            return PlainTextResponse("Not Found", status_code=404)
        try:
            form = await _form(request)
            app = self._client(request, form)
            token = _field(form, "token")
            if token is None:
                raise OAuthError("invalid_request", "token is required.")
            self.state.oauth.revoke(app, token)
            return JSONResponse({}, headers=_NO_STORE)
        except OAuthError as exc:
            return oauth_error(exc)

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.state.keys.jwks())

    async def openid_configuration(self, request: Request) -> Response:
        config = self.state.config
        revocation = (
            {"revocation_endpoint": f"{config.identity_url}/oauth/revoke"}
            if self.state.controls.serves_revoke
            else {}
        )
        return JSONResponse(
            {
                "issuer": config.issuer,
                "authorization_endpoint": f"{config.identity_url}/oauth/authorize",
                "token_endpoint": f"{config.identity_url}/oauth/token",
                **revocation,
                "jwks_uri": config.jwks_url,
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "read", "write"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    def _client(self, request: Request, form: FormData) -> SandboxApp:
        basic = _basic_credentials(request)
        client_id: str | None
        secret: str | None
        if basic is not None:
            if _field(form, "client_secret") is not None:
                raise OAuthError("invalid_request", "Use one client authentication method.")
            body_id = _field(form, "client_id")
            if body_id is not None and body_id != basic[0]:
                raise OAuthError("invalid_request", "client_id differs from the Basic one.")
            client_id, secret = basic
        else:
            client_id, secret = _field(form, "client_id"), _field(form, "client_secret")
        app = self.state.config.app_by_client_id(client_id or "")
        if (
            app is None
            or secret is None
            or not hmac.compare_digest(secret.encode(), app.client_secret.encode())
        ):
            raise OAuthError("invalid_client", "Client authentication failed.", status=401)
        return app

    def _exchange_code(self, app: SandboxApp, form: FormData) -> Response:
        code = _field(form, "code")
        if code is None:
            raise OAuthError("invalid_request", "code is required.")
        pair = self.state.oauth.exchange_code(
            app,
            code,
            redirect_uri=_field(form, "redirect_uri"),
            verifier=_field(form, "code_verifier"),
            account_of_user=self.state.account_of_user,
        )
        return JSONResponse(
            {
                "client_info": "prefix_legacy_app",
                "id_token": self._id_token(pair),
                **self._token_fields(pair),
            },
            headers=_NO_STORE,
        )

    def _refresh(self, app: SandboxApp, form: FormData) -> Response:
        token = _field(form, "refresh_token")
        if token is None:
            raise OAuthError("invalid_request", "refresh_token is required.")
        pair = self.state.oauth.refresh(app, token)
        return JSONResponse(self._token_fields(pair), headers=_NO_STORE)

    def _token_fields(self, pair: TokenPair) -> dict[str, Any]:
        return {
            "token_type": "bearer",
            "access_token": pair.access.value,
            "refresh_token": pair.refresh.value,
            "scope": pair.grant.scope,
            "expires_in": int(pair.access.expires_at - pair.access.issued_at),
        }

    def _id_token(self, pair: TokenPair) -> str:
        state, grant = self.state, pair.grant
        user = state.users[grant.user_id]
        account = state.accounts[grant.account_id]
        now = int(state.now())
        acr = f"acr:html-form:{account.region.claim.lower()}"
        claims = {
            "exp": now + ID_TOKEN_LIFETIME,
            "nbf": now,
            "jti": ids.uuid4(state.rng),
            "iss": state.config.issuer,
            "aud": [state.config.api_url(account.region.value), grant.client_id],
            "sub": user.id,
            "auth_time": now,
            "iat": now,
            "purpose": "id",
            "at_hash": _at_hash(pair.access.value),
            "acr": acr,
            "delegation_id": grant.id,
            "account_id": account.id,
            "user_id": user.id,
            "azp": grant.client_id,
            "amr": acr,
            "subdomain": account.subdomain,
            "region": account.region.claim,
            "sid": ids.uuid4(state.rng),
            "email": user.email,
            "name": user.name,
        }
        return state.keys.sign(claims, rogue=state.controls.rogue_id_tokens)


def _at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


async def _form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "Send application/x-www-form-urlencoded.")
    return await request.form()


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value != "" else None


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401)
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before joining.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
