import base64
import hashlib
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from app.pagerduty.errors import (
    ConsentDenied,
    InsufficientScope,
    MalformedResponse,
    OAuthError,
    RetryLater,
)
from app.pagerduty.hosts import PagerDutyHosts, pagerduty_hosts
from app.pagerduty.oauth import (
    OAuthApp,
    Pkce,
    TokenSet,
    authorize_url,
    exchange_code,
    new_pkce,
    new_state,
    pkce_from_verifier,
    read_callback,
    refresh_tokens,
    revoke_token,
)
from tests.pagerduty.conftest import CLIENT_ID, CLIENT_SECRET, NOW, REDIRECT_URI, Recorder

CODE = "authz-code-from-pagerduty"
ACCESS = "pdus+_0XBPWQQ_access_token_value"
REFRESH = "pdus+_1XBPWQQ_refresh_token_value"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def token_answer(**overrides: object) -> httpx2.Response:
    body: dict[str, object] = {
        "client_info": "prefix_legacy_app",
        "id_token": ID_TOKEN,
        "token_type": "bearer",
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "scope": "openid write",
        "expires_in": 864000,
    }
    body.update(overrides)
    return httpx2.Response(200, json={k: v for k, v in body.items() if v is not None})


def form(request: httpx2.Request) -> dict[str, str]:
    fields = parse_qs(request.content.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in fields.values())
    return {name: values[0] for name, values in fields.items()}


# --- PKCE, state, authorize URL ---------------------------------------------------------


def test_pkce_matches_rfc_7636_appendix_b() -> None:
    pkce = pkce_from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert pkce.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_new_pkce_is_a_long_random_verifier_with_its_s256_challenge() -> None:
    pkce = new_pkce()
    assert len(pkce.verifier) >= 64
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", pkce.verifier)
    digest = hashlib.sha256(pkce.verifier.encode("ascii")).digest()
    assert pkce.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert "=" not in pkce.challenge
    assert new_pkce().verifier != pkce.verifier


def test_new_state_is_random_and_url_safe() -> None:
    states = {new_state() for _ in range(20)}
    assert len(states) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{40,}", state) for state in states)


def test_authorize_url_carries_every_parameter(hosts: PagerDutyHosts, app: OAuthApp) -> None:
    pkce = new_pkce()
    url = urlsplit(authorize_url(hosts, app, state="st4te", pkce=pkce))
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "identity.pagerduty.com",
        "/oauth/authorize",
    )
    assert parse_qs(url.query) == {
        "client_id": [CLIENT_ID],
        "redirect_uri": [REDIRECT_URI],
        "response_type": ["code"],
        "scope": ["write"],
        "code_challenge": [pkce.challenge],
        "code_challenge_method": ["S256"],
        "state": ["st4te"],
    }
    assert pkce.verifier not in url.query
    assert CLIENT_SECRET not in url.query


def test_authorize_url_follows_an_identity_override(app: OAuthApp) -> None:
    hosts = pagerduty_hosts(identity_url="http://127.0.0.1:8900/identity/")
    url = authorize_url(hosts, app, state="s", pkce=new_pkce())
    assert url.startswith("http://127.0.0.1:8900/identity/oauth/authorize?")


# --- callback ---------------------------------------------------------------------------


def test_read_callback_returns_the_code() -> None:
    assert read_callback({"code": CODE, "state": "x"}) == CODE


def test_read_callback_denied_is_consent_denied() -> None:
    with pytest.raises(ConsentDenied) as caught:
        read_callback({"error": "access_denied", "error_description": "User denied access"})
    assert caught.value.error == "access_denied"
    assert caught.value.description == "User denied access"
    assert "declined" in str(caught.value)


def test_read_callback_other_error_keeps_code_and_cleans_description() -> None:
    with pytest.raises(OAuthError) as caught:
        read_callback({"error": "server_error", "error_description": "boom\r\nInjected: yes"})
    assert not isinstance(caught.value, ConsentDenied)
    assert caught.value.error == "server_error"
    assert "\n" not in str(caught.value)
    assert "boom Injected: yes" in str(caught.value)


@pytest.mark.parametrize("params", [{}, {"code": ""}, {"state": "only"}])
def test_read_callback_without_code_is_refused(params: dict[str, str]) -> None:
    with pytest.raises(OAuthError) as caught:
        read_callback(params)
    assert caught.value.error == "missing_code"


def test_read_callback_refuses_an_absurdly_long_code() -> None:
    with pytest.raises(OAuthError):
        read_callback({"code": "c" * 5000})


# --- code exchange ----------------------------------------------------------------------


async def test_exchange_code_posts_the_documented_form(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: token_answer()
    tokens = await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)

    assert tokens == TokenSet(
        access_token=ACCESS,
        refresh_token=REFRESH,
        expires_at=NOW + timedelta(seconds=864000),
        scopes=frozenset({"openid", "write"}),
        id_token=ID_TOKEN,
    )
    (request,) = pd.requests
    assert request.method == "POST"
    assert str(request.url) == "https://identity.pagerduty.com/oauth/token"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert "authorization" not in request.headers
    assert form(request) == {
        "grant_type": "authorization_code",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "code": CODE,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": "v" * 64,
    }


async def test_exchange_leaves_the_shared_client_open(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: token_answer()
    await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    pd.handler = lambda request: httpx2.Response(400, json={"error": "invalid_grant"})
    with pytest.raises(OAuthError):
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)

    assert pd.closed == 0
    assert not http.is_closed
    pd.handler = lambda request: httpx2.Response(204)
    assert (await http.get("https://api.pagerduty.com/")).status_code == 204


async def test_exchange_uses_the_shared_clients_headers(
    pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: token_answer()
    transport = httpx2.MockTransport(pd)
    async with httpx2.AsyncClient(transport=transport, headers={"User-Agent": "pdconnect"}) as http:
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert pd.requests[0].headers["user-agent"] == "pdconnect"
    assert pd.requests[0].headers["accept"] == "application/json"


@pytest.mark.parametrize(
    ("status", "body", "error", "description"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "Code expired"},
            "invalid_grant",
            "Code expired",
        ),
        (401, {"error": "invalid_client"}, "invalid_client", None),
        (
            400,
            {"error": "invalid_request", "error_description": "PKCE check failed"},
            "invalid_request",
            "PKCE check failed",
        ),
    ],
)
async def test_exchange_refusals_carry_the_oauth_error(
    http: httpx2.AsyncClient,
    pd: Recorder,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    status: int,
    body: dict[str, str],
    error: str,
    description: str | None,
) -> None:
    pd.handler = lambda request: httpx2.Response(status, json=body)
    with pytest.raises(OAuthError) as caught:
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert type(caught.value) is OAuthError
    assert (caught.value.error, caught.value.description) == (error, description)
    assert error in str(caught.value)
    assert CLIENT_SECRET not in str(caught.value)
    assert CODE not in str(caught.value)


async def test_exchange_refusal_without_oauth_body_is_still_a_refusal(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: httpx2.Response(404, text="<html>Not here</html>")
    with pytest.raises(OAuthError) as caught:
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert caught.value.error == "http_404"


async def test_exchange_granting_only_openid_is_insufficient_scope(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: token_answer(scope="openid")
    with pytest.raises(InsufficientScope) as caught:
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert caught.value.granted == frozenset({"openid"})
    assert caught.value.required == "write"
    assert "'openid'" in str(caught.value)
    assert "'write'" in str(caught.value)
    assert ACCESS not in str(caught.value)
    assert ACCESS not in repr(caught.value)


async def test_exchange_without_scope_in_answer_granted_what_was_asked(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: token_answer(scope=None)
    tokens = await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert tokens.scopes == frozenset({"write"})


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_exchange_server_errors_are_retry_later(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp, status: int
) -> None:
    pd.handler = lambda request: httpx2.Response(status, json={"error": "server_error"})
    with pytest.raises(RetryLater) as caught:
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert caught.value.status == status


async def test_exchange_rate_limited_is_retry_later_with_delay(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: httpx2.Response(429, headers={"ratelimit-reset": "12"})
    with pytest.raises(RetryLater) as caught:
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert caught.value.retry_after == 12.0


@pytest.mark.parametrize("failure", [httpx2.ReadTimeout("slow"), httpx2.ConnectError("refused")])
async def test_exchange_transport_failures_are_retry_later(
    http: httpx2.AsyncClient,
    pd: Recorder,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    failure: Exception,
) -> None:
    def fail(request: httpx2.Request) -> httpx2.Response:
        raise failure

    pd.handler = fail
    with pytest.raises(RetryLater) as caught:
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert caught.value.__cause__ is failure


@pytest.mark.parametrize(
    "answer",
    [
        httpx2.Response(200, text="<html>gateway</html>"),
        httpx2.Response(200, json=["not", "an", "object"]),
        token_answer(access_token=None),
        token_answer(refresh_token=""),
        token_answer(token_type="mac"),
        token_answer(expires_in="soon"),
        token_answer(expires_in=-5),
        token_answer(scope=["write"]),
    ],
)
async def test_exchange_unusable_answers_are_malformed(
    http: httpx2.AsyncClient,
    pd: Recorder,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    answer: httpx2.Response,
) -> None:
    pd.handler = lambda request: answer
    with pytest.raises(MalformedResponse):
        await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)


async def test_exchange_trusts_expires_in(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: token_answer(expires_in=2592000)
    tokens = await exchange_code(http, hosts, app, code=CODE, pkce_verifier="v" * 64, now=NOW)
    assert tokens.expires_at == NOW + timedelta(days=30)
    assert tokens.expires_at.tzinfo is not None


# --- refresh and revoke -----------------------------------------------------------------


async def test_refresh_rotates_both_tokens(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: token_answer(
        access_token="pdus+_new_access", refresh_token="pdus+_new_refresh", id_token=None
    )
    tokens = await refresh_tokens(http, hosts, app, refresh_token=REFRESH, now=NOW)

    assert (tokens.access_token, tokens.refresh_token) == ("pdus+_new_access", "pdus+_new_refresh")
    assert tokens.id_token is None
    (request,) = pd.requests
    assert str(request.url) == "https://identity.pagerduty.com/oauth/token"
    assert form(request) == {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH,
    }


async def test_refresh_keeps_the_old_refresh_token_when_none_comes_back(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: token_answer(access_token="pdus+_new_access", refresh_token=None)
    tokens = await refresh_tokens(http, hosts, app, refresh_token=REFRESH, now=NOW)
    assert tokens.refresh_token == REFRESH


async def test_refresh_of_a_revoked_token_is_invalid_grant(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: httpx2.Response(400, json={"error": "invalid_grant"})
    with pytest.raises(OAuthError) as caught:
        await refresh_tokens(http, hosts, app, refresh_token=REFRESH, now=NOW)
    assert caught.value.error == "invalid_grant"
    assert REFRESH not in str(caught.value)


async def test_revoke_posts_token_and_client_credentials(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    pd.handler = lambda request: httpx2.Response(200)
    await revoke_token(http, hosts, app, token=REFRESH)
    (request,) = pd.requests
    assert str(request.url) == "https://identity.pagerduty.com/oauth/revoke"
    assert form(request) == {
        "token": REFRESH,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert not http.is_closed
    assert pd.closed == 0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx2.Response(404, text="no such endpoint"), OAuthError),
        (httpx2.Response(400, json={"error": "unsupported_token_type"}), OAuthError),
        (httpx2.Response(503), RetryLater),
    ],
)
async def test_revoke_failures_raise(
    http: httpx2.AsyncClient,
    pd: Recorder,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    answer: httpx2.Response,
    expected: type[Exception],
) -> None:
    pd.handler = lambda request: answer
    with pytest.raises(expected) as caught:
        await revoke_token(http, hosts, app, token=REFRESH)
    assert REFRESH not in str(caught.value)


# --- secrets stay out of reprs ----------------------------------------------------------


def test_reprs_hide_secrets() -> None:
    app = OAuthApp(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI)
    pkce = Pkce(verifier="verifier-secret-" * 4, challenge="challenge")
    tokens = TokenSet(
        access_token=ACCESS,
        refresh_token=REFRESH,
        expires_at=NOW,
        scopes=frozenset({"write"}),
        id_token=ID_TOKEN,
    )
    assert CLIENT_SECRET not in repr(app)
    assert CLIENT_ID in repr(app)
    assert "verifier-secret" not in repr(pkce)
    assert "challenge" in repr(pkce)
    for secret in (ACCESS, REFRESH, ID_TOKEN):
        assert secret not in repr(tokens)
        assert secret not in str(tokens)
    assert "write" in repr(tokens)
    assert json.dumps(sorted(tokens.scopes)) == '["write"]'
