"""`/identity/oauth/authorize`: PagerDuty's sign-in and consent page.

Order of checks, as RFC 6749 section 4.1.2.1 requires: an unknown `client_id` or a
`redirect_uri` not registered exactly gets an error page and never a redirect (else the
endpoint would be an open redirector); every other problem goes back to the client as
`redirect_uri?error=…`. The form post is checked again from scratch: hidden fields are
whatever the browser sent.

Scope: only `read` and `write` exist for Classic User OAuth. Anything else, or a scope the
user unticks, is not an error: PagerDuty then grants only `openid`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pdsandbox.config import SandboxApp
from pdsandbox.identity.oauth_store import valid_challenge
from pdsandbox.pages import error_page, esc, hidden, page
from pdsandbox.state import SandboxState
from pdsandbox.urls import add_query

GRANTABLE_SCOPES = ("read", "write")
_CARRIED = (
    "client_id", "redirect_uri", "response_type", "scope",
    "code_challenge", "code_challenge_method", "state",
)  # fmt: skip


@dataclass(frozen=True)
class AuthorizeRequest:
    app: SandboxApp
    redirect_uri: str
    params: Mapping[str, str]

    @property
    def state(self) -> str | None:
        return self.params.get("state")

    def redirect(self, params: dict[str, str]) -> RedirectResponse:
        if self.state is not None:
            params["state"] = self.state
        return RedirectResponse(add_query(self.redirect_uri, params), status_code=302)

    def refuse(self, error: str, description: str) -> RedirectResponse:
        return self.redirect({"error": error, "error_description": description})


def granted_scope(requested: str, allowed_by_user: str) -> str:
    wanted, allowed = set(requested.split()), set(allowed_by_user.split())
    return " ".join(["openid", *(s for s in GRANTABLE_SCOPES if s in wanted and s in allowed)])


class AuthorizeEndpoint:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def get(self, request: Request) -> Response:
        return self._handle(_strings(request.query_params), decision=None)

    async def post(self, request: Request) -> Response:
        async with request.form() as form:
            fields = _strings(form)
        return self._handle(fields, decision=fields.get("decision", ""))

    def _handle(self, params: dict[str, str], decision: str | None) -> Response:
        app = self.state.config.app_by_client_id(params.get("client_id", ""))
        if app is None:
            return error_page("Authorization failed", "Unknown client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            return error_page(
                "Authorization failed", "redirect_uri is not registered for this app."
            )
        req = AuthorizeRequest(app, redirect_uri, params)
        problem = _protocol_problem(params)
        if problem is not None:
            return req.refuse(*problem)
        if decision is None:
            return self._consent_page(req)
        if decision == "deny":
            return req.refuse(
                "access_denied", "The resource owner or authorization server denied the request."
            )
        if decision != "approve":
            return error_page("Authorization failed", "Choose Approve or Deny.")
        user = self.state.users.get(params.get("user", ""))
        if user is None:
            return error_page("Authorization failed", "Choose a user to sign in as.")
        requested = params.get("scope", "")
        code = self.state.oauth.issue_code(
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            user_id=user.id,
            scope=granted_scope(requested, params.get("grant_scope", requested)),
            code_challenge=params.get("code_challenge"),
        )
        subdomain = self.state.accounts[user.account_id].subdomain
        # PagerDuty documents `subdomain` beside the code; it is unsigned, so only a hint.
        return req.redirect({"code": code.code, "subdomain": subdomain})

    def _consent_page(self, req: AuthorizeRequest) -> Response:
        carried = "".join(hidden(k, req.params[k]) for k in _CARRIED if k in req.params)
        options = "".join(
            f'<option value="{esc(u.id)}">{esc(u.name)} &lt;{esc(u.email)}&gt; — '
            f"{esc(a.name)} ({esc(a.subdomain)}, {a.region.label})</option>"
            for u in self.state.users.values()
            for a in [self.state.accounts[u.account_id]]
        )
        scope = req.params.get("scope", "")
        body = (
            f"<p id=app-request><strong id=app-name>{esc(req.app.name)}</strong> asks for access "
            f"to your PagerDuty account with scope <code id=requested-scope>{esc(scope)}</code>."
            "</p>"
            "<form method=post action=authorize id=authorize-form>"
            f"{carried}"
            "<label for=user>Sign in as</label>"
            f"<select id=user name=user required>{options}</select>"
            "<label for=grant_scope>Scope to grant (space separated)</label>"
            f'<input id=grant_scope name=grant_scope value="{esc(scope)}">'
            "<p>"
            "<button type=submit id=approve name=decision value=approve>Approve</button>"
            "<button type=submit id=deny name=decision value=deny>Deny</button>"
            "</p></form>"
        )
        return page("Authorize app", body)


def _protocol_problem(params: Mapping[str, str]) -> tuple[str, str] | None:
    response_type = params.get("response_type")
    if response_type is None:
        return ("invalid_request", "response_type is required.")
    if response_type != "code":
        return ("unsupported_response_type", "Only response_type=code is supported.")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None and method is None:
        return None
    if challenge is None:
        return ("invalid_request", "code_challenge_method sent without code_challenge.")
    if method != "S256":
        return ("invalid_request", "code_challenge_method must be S256.")
    if not valid_challenge(challenge):
        return ("invalid_request", "code_challenge must be BASE64URL(SHA256(verifier)).")
    return None


def _strings(data: Mapping[str, object]) -> dict[str, str]:
    return {k: v for k, v in data.items() if isinstance(v, str)}
