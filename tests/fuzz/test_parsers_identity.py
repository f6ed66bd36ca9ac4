"""What PagerDuty's identity service hands back: the id_token (app/pagerduty/id_token.py) and
the token endpoint's answer (app/pagerduty/oauth.py). A token signed with PagerDuty's real key
may still carry any claims, so claims are fuzzed under a valid signature too; either an
Identity comes out, or InvalidIdToken."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from hypothesis import example, given
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

from app.pagerduty.discovery import OpenIdDiscovery
from app.pagerduty.errors import InvalidIdToken, PagerDutyError
from app.pagerduty.hosts import pagerduty_hosts
from app.pagerduty.id_token import CLAIM_MAX_LENGTH, Identity, verify
from app.pagerduty.oauth import OAuthApp, exchange_code
from tests.fuzz.outcome import outcome
from tests.fuzz.strategies import broken, examples, json_values, nasty_text, words

T = TypeVar("T")
HOSTS = pagerduty_hosts()
# PagerDuty's discovery document, as it names the issuer and the keys.
DISCOVERY = {"issuer": HOSTS.published_issuer, "jwks_uri": HOSTS.published_jwks_url}
CLIENT_ID = "pdconnect-client"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
# Generated once: RSA key generation is slow, and any key will do.
KEY = RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"}, private=True)
JWKS = {"keys": [KEY.as_dict(private=False)]}
CLAIMS = ("iss", "aud", "exp", "iat", "account_id", "user_id", "subdomain", "region")


def _answering(status: int, body: bytes) -> httpx2.AsyncClient:
    handler = lambda request: httpx2.Response(  # noqa: E731
        status, content=body, headers={"content-type": "application/json"}
    )
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


def _run(make: Callable[[httpx2.AsyncClient], Awaitable[T]], client: httpx2.AsyncClient) -> T:
    async def call() -> T:
        async with client:
            return await make(client)

    return asyncio.run(call())


def _identity_host(request: httpx2.Request) -> httpx2.Response:
    if str(request.url) == HOSTS.discovery_url:
        return httpx2.Response(200, json=DISCOVERY)
    return httpx2.Response(200, json=JWKS)


def _verify(token: str) -> Identity:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(_identity_host))
    discovery = OpenIdDiscovery(HOSTS)
    return _run(
        lambda http: verify(
            http, HOSTS, discovery=discovery, client_id=CLIENT_ID, id_token=token, now=NOW
        ),
        client,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signed(header: dict[str, Any], claims: Any) -> str:
    """RS256 by PagerDuty's key over any header and payload, even ones no JOSE library would
    write (a kid that is not a string, a payload that is not JSON)."""
    payload = claims if isinstance(claims, str) else json.dumps(claims)
    signing_input = ".".join(
        (_b64(json.dumps(header).encode()), _b64(payload.encode("utf-8", "surrogatepass")))
    )
    private = KEY.private_key
    assert private is not None
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


labels = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@st.composite
def claim_sets(draw: st.DrawFn) -> dict[str, Any]:
    region = draw(st.sampled_from(("us", "eu")))
    return {
        "iss": DISCOVERY["issuer"],
        "aud": [HOSTS.region(region).api_url, CLIENT_ID],
        "exp": int(NOW.timestamp()) + draw(st.integers(1, 7200)),
        "iat": int(NOW.timestamp()) - 60,
        "account_id": draw(words(CLAIM_MAX_LENGTH)),
        "user_id": draw(words(CLAIM_MAX_LENGTH)),
        "subdomain": draw(labels),
        "region": draw(st.sampled_from(("UnitedStates", "EU", "Europe", "elsewhere"))),
    }


@examples(30)
@given(claim_sets())
def test_a_valid_token_gives_its_identity(claims: dict[str, Any]) -> None:
    identity = _verify(_signed({"alg": "RS256", "kid": "key-1"}, claims))
    assert (identity.account_id, identity.user_id) == (claims["account_id"], claims["user_id"])
    assert identity.subdomain == claims["subdomain"]
    assert identity.api_url == claims["aud"][0]


headers = st.one_of(
    st.just({"alg": "RS256", "kid": "key-1"}),
    st.just({"alg": "RS256"}),
    st.fixed_dictionaries({"alg": st.just("RS256"), "kid": json_values()}),
)


@examples(60)
@given(
    headers,
    st.one_of(
        claim_sets().flatmap(broken),
        json_values(st.sampled_from(CLAIMS)),
        nasty_text,
    ),
)
@example({"alg": "RS256"}, '{"exp": 1' + "0" * 5000 + "}")
@example({"alg": "RS256"}, '{"exp": NaN, "iss": "x"}')
@example({"alg": "RS256", "kid": ["key-1"]}, {})
def test_any_claims_under_a_valid_signature_give_an_identity_or_are_refused(
    header: dict[str, Any], claims: Any
) -> None:
    identity = outcome(lambda: _verify(_signed(header, claims)), InvalidIdToken)
    if isinstance(identity, InvalidIdToken):
        assert str(identity).strip()
        return
    assert identity.region in ("us", "eu")
    assert 0 < len(identity.account_id) <= CLAIM_MAX_LENGTH


@examples(60)
@given(st.one_of(nasty_text, st.text("abcXYZ0189-_.=", max_size=200)))
@example("eyJhbGciOiJub25lIn0.e30.")
@example("W10.e30.AA")
@example("e30" + "." * 5000)
def test_any_token_text_is_refused_not_a_crash(token: str) -> None:
    refused = outcome(lambda: _verify(token), InvalidIdToken)
    assert isinstance(refused, InvalidIdToken), "an unsigned token was accepted"
    assert str(refused).strip()


# --- The token endpoint's answer ----------------------------------------------------------

APP = OAuthApp(client_id=CLIENT_ID, client_secret="secret", redirect_uri="https://v.example/cb")
TOKEN_FIELDS = ("access_token", "refresh_token", "token_type", "expires_in", "scope", "id_token")


@st.composite
def token_answers(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "access_token": draw(words()),
        "refresh_token": draw(words()),
        "token_type": draw(st.sampled_from(("bearer", "Bearer"))),
        "expires_in": draw(st.integers(1, 86400)),
        "scope": draw(st.sampled_from(("openid write", "read write openid"))),
    }


@examples(40)
@given(
    st.sampled_from((200, 200, 400, 401, 429, 500)),
    st.one_of(
        token_answers().flatmap(broken).map(json.dumps),
        json_values(st.sampled_from(TOKEN_FIELDS)).map(json.dumps),
        nasty_text,
    ),
)
@example(200, '{"access_token": "a", "refresh_token": "r", "expires_in": 1' + "0" * 400 + "}")
@example(200, '{"access_token": "a", "refresh_token": "r", "expires_in": "1e400"}')
@example(400, '{"error": ["invalid_grant"]}')
def test_any_token_answer_gives_tokens_or_our_error(status: int, body: str) -> None:
    client = _answering(status, body.encode("utf-8", "surrogatepass"))
    tokens = outcome(
        lambda: _run(
            lambda http: exchange_code(
                http, HOSTS, APP, code="code", pkce_verifier="v" * 50, now=NOW
            ),
            client,
        ),
        PagerDutyError,
    )
    if isinstance(tokens, PagerDutyError):
        assert str(tokens).strip()
        return
    assert tokens.access_token
    assert tokens.expires_at > NOW
