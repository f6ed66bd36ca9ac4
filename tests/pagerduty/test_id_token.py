import base64
import hashlib
import hmac
import json
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.pagerduty.discovery import OpenIdDiscovery
from app.pagerduty.errors import InvalidIdToken, MalformedResponse, RetryLater
from app.pagerduty.hosts import PagerDutyHosts, pagerduty_hosts
from app.pagerduty.oauth import Identity, OAuthApp, verify_id_token
from tests.pagerduty.conftest import CLIENT_ID, NOW, Recorder

# As PagerDuty's discovery document names them: the issuer on the app host, the keys on the
# identity host, which also serves the document.
ISSUER = "https://app.pagerduty.com/global/oauth/anonymous"
JWKS_URL = "https://identity.pagerduty.com/global/oauth/anonymous/jwks"
DISCOVERY_URL = (
    "https://identity.pagerduty.com/global/oauth/anonymous/.well-known/openid-configuration"
)
DOCUMENT = {
    "issuer": ISSUER,
    "authorization_endpoint": "https://identity.pagerduty.com/oauth/authorize",
    "token_endpoint": "https://identity.pagerduty.com/oauth/token",
    "jwks_uri": JWKS_URL,
    "id_token_signing_alg_values_supported": ["RS256"],
}
US_API = "https://api.pagerduty.com"
EU_API = "https://api.eu.pagerduty.com"
EXP = int(NOW.timestamp()) + 3600


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"})


@pytest.fixture(scope="module")
def other_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "key-1", "use": "sig"})


@pytest.fixture
def jwks(pd: Recorder, signing_key: RSAKey) -> list[dict[str, Any]]:
    """The keys PagerDuty publishes; tests may change the list before verifying."""
    keys: list[dict[str, Any]] = [dict(signing_key.as_dict(private=False))]

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.method == "GET"
        if request.url.path.endswith("/.well-known/openid-configuration"):
            # The identity host's own document, wherever that host is.
            base = str(request.url).removesuffix("/.well-known/openid-configuration")
            if request.url.host == "identity.pagerduty.com":
                return httpx2.Response(200, json=DOCUMENT)
            issuer = base.replace("/identity/", "/app/")
            return httpx2.Response(200, json={"issuer": issuer, "jwks_uri": f"{base}/jwks"})
        return httpx2.Response(200, json={"keys": keys})

    pd.handler = handler
    return keys


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [US_API, CLIENT_ID],
        "exp": EXP,
        "iat": EXP - 7200,
        "account_id": "PACCT01",
        "user_id": "PUSER01",
        "subdomain": "acme",
        "region": "UnitedStates",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: RSAKey, body: dict[str, Any], kid: str | None = "key-1") -> str:
    header: dict[str, Any] = {"alg": "RS256"}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(header, body, key)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], body: dict[str, Any], secret: bytes | None = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    signature = b""
    if secret is not None:
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def verify(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, token: str
) -> Identity:
    """Through the product's path, with a fresh discovery (nothing cached between calls)."""
    discovery = OpenIdDiscovery(hosts)
    return await verify_id_token(http, hosts, app, token, now=NOW, discovery=discovery)


@pytest.mark.usefixtures("jwks")
async def test_us_account_from_aud(
    http: httpx2.AsyncClient,
    pd: Recorder,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    signing_key: RSAKey,
) -> None:
    identity = await verify(http, hosts, app, sign(signing_key, claims()))
    assert identity == Identity(
        account_id="PACCT01",
        user_id="PUSER01",
        subdomain="acme",
        region="us",
        api_url=US_API,
        events_url="https://events.pagerduty.com",
    )
    assert [str(r.url) for r in pd.requests] == [DISCOVERY_URL, JWKS_URL]


@pytest.mark.usefixtures("jwks")
async def test_eu_account_from_aud_even_without_region_claim(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, signing_key: RSAKey
) -> None:
    token = sign(signing_key, claims(aud=[EU_API + "/", CLIENT_ID], region=None))
    identity = await verify(http, hosts, app, token)
    assert (identity.region, identity.api_url, identity.events_url) == (
        "eu",
        EU_API,
        "https://events.eu.pagerduty.com",
    )


@pytest.mark.usefixtures("jwks")
async def test_aud_wins_over_a_contradicting_region_claim(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, signing_key: RSAKey
) -> None:
    token = sign(signing_key, claims(aud=[EU_API, CLIENT_ID], region="UnitedStates"))
    assert (await verify(http, hosts, app, token)).region == "eu"


@pytest.mark.usefixtures("jwks")
@pytest.mark.parametrize("region", ["EuropeanUnion", "Europe", "EU"])
async def test_eu_account_from_region_claim(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, signing_key: RSAKey, region: str
) -> None:
    token = sign(signing_key, claims(aud=CLIENT_ID, region=region))
    identity = await verify(http, hosts, app, token)
    assert (identity.region, identity.api_url) == ("eu", EU_API)


@pytest.mark.usefixtures("jwks")
async def test_urls_never_come_from_the_token(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, signing_key: RSAKey
) -> None:
    token = sign(
        signing_key, claims(aud=["https://api.evil.example", CLIENT_ID], region="UnitedStates")
    )
    identity = await verify(http, hosts, app, token)
    assert (identity.region, identity.api_url) == ("us", US_API)


@pytest.mark.usefixtures("jwks")
async def test_no_region_anywhere_is_refused(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, signing_key: RSAKey
) -> None:
    for region in (None, "Mars"):
        token = sign(signing_key, claims(aud=CLIENT_ID, region=region))
        with pytest.raises(InvalidIdToken, match="region"):
            await verify(http, hosts, app, token)


@pytest.mark.usefixtures("jwks")
async def test_sandbox_hosts_with_region_placeholder(
    http: httpx2.AsyncClient, pd: Recorder, app: OAuthApp, signing_key: RSAKey
) -> None:
    hosts = pagerduty_hosts(
        identity_url="http://127.0.0.1:8900/identity",
        api_url="http://127.0.0.1:8900/{region}/api",
        events_url="http://127.0.0.1:8900/{region}/events",
        app_url="http://127.0.0.1:8900/app",
    )
    token = sign(
        signing_key,
        claims(
            iss="http://127.0.0.1:8900/app/global/oauth/anonymous",
            aud=["http://127.0.0.1:8900/eu/api", CLIENT_ID],
            region=None,
        ),
    )
    identity = await verify(http, hosts, app, token)
    assert (identity.region, identity.api_url, identity.events_url) == (
        "eu",
        "http://127.0.0.1:8900/eu/api",
        "http://127.0.0.1:8900/eu/events",
    )
    assert [str(r.url) for r in pd.requests] == [
        "http://127.0.0.1:8900/identity/global/oauth/anonymous/.well-known/openid-configuration",
        "http://127.0.0.1:8900/identity/global/oauth/anonymous/jwks",
    ]


@pytest.mark.usefixtures("jwks")
async def test_one_api_for_both_regions_takes_the_region_claim(
    http: httpx2.AsyncClient, app: OAuthApp, signing_key: RSAKey
) -> None:
    hosts = pagerduty_hosts(api_url="http://127.0.0.1:8900/api")
    token = sign(
        signing_key, claims(aud=["http://127.0.0.1:8900/api", CLIENT_ID], region="EuropeanUnion")
    )
    assert (await verify(http, hosts, app, token)).region == "eu"


async def test_the_key_is_chosen_by_kid(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    jwks: list[dict[str, Any]],
    signing_key: RSAKey,
) -> None:
    rotated = RSAKey.generate_key(2048, parameters={"kid": "key-2"})
    jwks.append(dict(rotated.as_dict(private=False)))
    jwks.append({"kty": "EC", "crv": "P-256", "x": "bad", "y": "bad", "kid": "ec"})
    identity = await verify(http, hosts, app, sign(rotated, claims(), kid="key-2"))
    assert identity.account_id == "PACCT01"
    assert (await verify(http, hosts, app, sign(signing_key, claims()))).account_id == "PACCT01"


@pytest.mark.usefixtures("jwks")
async def test_signature_by_another_key_is_refused(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, other_key: RSAKey
) -> None:
    with pytest.raises(InvalidIdToken, match="signature"):
        await verify(http, hosts, app, sign(other_key, claims()))


@pytest.mark.usefixtures("jwks")
async def test_unknown_kid_is_refused(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, signing_key: RSAKey
) -> None:
    with pytest.raises(InvalidIdToken, match="kid"):
        await verify(http, hosts, app, sign(signing_key, claims(), kid="retired-key"))


@pytest.mark.usefixtures("jwks")
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "https://identity.evil.example/global/oauth/anonymous"}, "'iss'"),
        ({"iss": None}, "iss"),
        ({"aud": [US_API, "someone-else"]}, "'aud'"),
        ({"aud": "someone-else"}, "'aud'"),
        ({"exp": int(NOW.timestamp()) - 120}, "expired"),
        ({"exp": None}, "exp"),
        ({"subdomain": None}, "subdomain"),
        ({"account_id": None}, "account_id"),
        ({"user_id": 42}, "user_id"),
        ({"subdomain": "not a subdomain!"}, "subdomain"),
        ({"nbf": int(NOW.timestamp()) + 3600}, "'nbf'"),
    ],
)
async def test_bad_claims_are_refused(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    signing_key: RSAKey,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    with pytest.raises(InvalidIdToken) as caught:
        await verify(http, hosts, app, sign(signing_key, claims(**overrides)))
    assert reason in str(caught.value)
    assert caught.value.error == "invalid_id_token"


@pytest.mark.usefixtures("jwks")
async def test_expiry_allows_small_clock_skew(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, signing_key: RSAKey
) -> None:
    token = sign(signing_key, claims(exp=int(NOW.timestamp()) - 30))
    assert (await verify(http, hosts, app, token)).account_id == "PACCT01"


@pytest.mark.usefixtures("jwks")
async def test_alg_none_is_refused(
    http: httpx2.AsyncClient, pd: Recorder, hosts: PagerDutyHosts, app: OAuthApp
) -> None:
    token = unsigned({"alg": "none", "kid": "key-1"}, claims())
    with pytest.raises(InvalidIdToken, match="'none'"):
        await verify(http, hosts, app, token)
    assert pd.requests == []


@pytest.mark.usefixtures("jwks")
async def test_hs256_signed_with_the_public_key_is_refused(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, signing_key: RSAKey
) -> None:
    public_pem = signing_key.as_pem(private=False)
    token = unsigned({"alg": "HS256", "kid": "key-1"}, claims(), secret=public_pem)
    with pytest.raises(InvalidIdToken, match="HS256"):
        await verify(http, hosts, app, token)


@pytest.mark.usefixtures("jwks")
@pytest.mark.parametrize(
    "token", ["", "not-a-jwt", "a.b", "a.b.c.d", "é.é.é", "x" * 20000, "ImFsZyI.e30.", "W10.e30."]
)
async def test_garbage_is_refused(
    http: httpx2.AsyncClient, hosts: PagerDutyHosts, app: OAuthApp, token: str
) -> None:
    with pytest.raises(InvalidIdToken):
        await verify(http, hosts, app, token)


async def test_jwks_outage_is_retry_later(
    http: httpx2.AsyncClient,
    pd: Recorder,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    signing_key: RSAKey,
) -> None:
    pd.handler = lambda request: httpx2.Response(503)
    with pytest.raises(RetryLater):
        await verify(http, hosts, app, sign(signing_key, claims()))


@pytest.mark.parametrize(
    "answer",
    [
        httpx2.Response(200, text="<html>"),
        httpx2.Response(200, json={"keys": "nope"}),
        httpx2.Response(200, json={"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        httpx2.Response(404),
    ],
)
async def test_unusable_jwks_is_malformed(
    http: httpx2.AsyncClient,
    pd: Recorder,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    signing_key: RSAKey,
    answer: httpx2.Response,
) -> None:
    pd.handler = lambda request: answer
    with pytest.raises(MalformedResponse):
        await verify(http, hosts, app, sign(signing_key, claims()))


async def test_a_token_without_kid_needs_a_single_key(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    app: OAuthApp,
    jwks: list[dict[str, Any]],
    signing_key: RSAKey,
) -> None:
    token = sign(signing_key, claims(), kid=None)
    assert (await verify(http, hosts, app, token)).account_id == "PACCT01"
    jwks.append(dict(RSAKey.generate_key(2048, parameters={"kid": "key-2"}).as_dict()))
    with pytest.raises(InvalidIdToken, match="kid"):
        await verify(http, hosts, app, token)


def test_invalid_id_token_message_is_one_clean_line() -> None:
    error = InvalidIdToken("no key in PagerDuty's JWKS has the kid 'a\nb'")
    assert "\n" not in str(error)
    assert str(error).startswith("PagerDuty's id_token failed verification:")
