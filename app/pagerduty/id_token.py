"""Verifying PagerDuty's id_token, the only place the token answer names the account.

RS256 only, with a key from PagerDuty's JWKS fetched for each verification (keys rotate and
a connection is rare, so a cache would save little and could serve a retired key). Where the
JWKS is and which `iss` to expect come from PagerDuty's discovery document
(`app.pagerduty.discovery`): the issuer is on PagerDuty's app host, the keys on its identity
host. The region comes from `aud` (which holds the regional API base) or, failing that, the
`region` claim; the URLs returned are always our configured ones, never a URL taken from the
token.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import httpx2
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import RSAKey

from app.pagerduty._http import error_for, transport_errors
from app.pagerduty._text import is_subdomain
from app.pagerduty._wire import as_list, as_object, read_json
from app.pagerduty.discovery import OpenIdDiscovery
from app.pagerduty.errors import InvalidIdToken, MalformedResponse, RetryLater
from app.pagerduty.hosts import PagerDutyHosts

ALGORITHM = "RS256"
ID_TOKEN_MAX_LENGTH = 16 * 1024
CLOCK_SKEW_LEEWAY_SECONDS = 60
CLAIM_MAX_LENGTH = 128
REQUIRED_CLAIMS = ("account_id", "user_id", "subdomain")
IDENTITY_SERVICE = "PagerDuty's identity service"


@dataclass(frozen=True)
class Identity:
    account_id: str
    user_id: str
    subdomain: str
    region: str
    api_url: str
    events_url: str


async def fetch_signing_keys(http: httpx2.AsyncClient, jwks_url: str) -> list[RSAKey]:
    """PagerDuty's RSA signature keys; keys of other types or uses are ignored (RFC 7517 §5)."""
    async with transport_errors(IDENTITY_SERVICE):
        response = await http.get(jwks_url, headers={"Accept": "application/json"})
    error = error_for(response, IDENTITY_SERVICE)
    if isinstance(error, RetryLater):
        raise error
    if error is not None:
        raise MalformedResponse(f"the JWKS endpoint answered HTTP {response.status_code}")
    keys: list[RSAKey] = []
    for value in as_list(as_object(read_json(response), "the JWKS").get("keys"), "keys"):
        if not isinstance(value, dict) or value.get("kty") != "RSA":
            continue
        if value.get("use", "sig") != "sig" or value.get("alg", ALGORITHM) != ALGORITHM:
            continue
        try:
            keys.append(RSAKey.import_key(cast(dict[str, str | list[str]], value)))
        except (JoseError, ValueError, TypeError):
            continue
    if not keys:
        raise MalformedResponse("the JWKS holds no RS256 signing key")
    return keys


def _header(id_token: str) -> Mapping[str, object]:
    if len(id_token) > ID_TOKEN_MAX_LENGTH:
        raise InvalidIdToken(f"it is longer than {ID_TOKEN_MAX_LENGTH} characters")
    try:
        header: object = jws.extract_compact(id_token.encode("ascii")).headers()
    except (JoseError, ValueError, TypeError, AttributeError) as exc:
        # UnicodeEncodeError is a ValueError; AttributeError and TypeError come from joserfc
        # reading a header that is JSON but not an object.
        raise InvalidIdToken("it is not a compact JWS") from exc
    if not isinstance(header, dict):
        raise InvalidIdToken("its header is not a JSON object")
    # Checked before any key is used: "none" and HS256 (with the public key as the HMAC
    # secret) are the classic forgeries.
    if header.get("alg") != ALGORITHM:
        raise InvalidIdToken(f"it is signed with {header.get('alg')!r}, not {ALGORITHM}")
    return header


def _pick_key(keys: list[RSAKey], kid: object) -> RSAKey:
    if kid is None:
        if len(keys) == 1:
            return keys[0]
        raise InvalidIdToken("it names no key (kid) and PagerDuty publishes several")
    for key in keys:
        if key.kid == kid:
            return key
    raise InvalidIdToken(f"no key in PagerDuty's JWKS has the kid {kid!r}")


def _verified_claims(id_token: str, key: RSAKey) -> Mapping[str, object]:
    try:
        return jwt.decode(id_token, key, algorithms=[ALGORITHM]).claims
    except BadSignatureError as exc:
        raise InvalidIdToken("its signature does not match PagerDuty's key") from exc
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidIdToken(f"it could not be decoded ({type(exc).__name__})") from exc


def _check_claims(
    claims: Mapping[str, object], *, issuer: str, client_id: str, now: datetime
) -> None:
    essential: jwt.ClaimsOption = {"essential": True}
    registry = jwt.JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=CLOCK_SKEW_LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        exp=essential,
        **dict.fromkeys(REQUIRED_CLAIMS, essential),
    )
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError as exc:
        raise InvalidIdToken("it has expired") from exc
    except MissingClaimError as exc:
        raise InvalidIdToken(f"it lacks the claims {exc.claim}") from exc
    except InvalidClaimError as exc:
        raise InvalidIdToken(
            f"its {exc.claim!r} claim is not what PagerDuty issues to this app"
        ) from exc
    except JoseError as exc:
        raise InvalidIdToken(f"its claims are invalid ({type(exc).__name__})") from exc
    for name in REQUIRED_CLAIMS:
        value = claims[name]
        if not isinstance(value, str) or not 0 < len(value) <= CLAIM_MAX_LENGTH:
            raise InvalidIdToken(f"its {name!r} claim is not a short string")


def _claimed_region(value: object) -> str | None:
    """PagerDuty writes e.g. "UnitedStates"; read any spelling naming the US or Europe."""
    if not isinstance(value, str):
        return None
    letters = re.sub(r"[^a-z]", "", value.lower())
    if letters in ("us", "usa", "unitedstates", "unitedstatesofamerica"):
        return "us"
    if letters.startswith("eu") or "europe" in letters:
        return "eu"
    return None


def _region(claims: Mapping[str, object], hosts: PagerDutyHosts) -> str:
    aud = claims.get("aud")
    audiences = {
        a.rstrip("/")
        for a in ([aud] if isinstance(aud, str) else as_list(aud, "aud"))
        if isinstance(a, str)
    }
    matching = [name for name, urls in hosts.regions.items() if urls.api_url in audiences]
    claimed = _claimed_region(claims.get("region"))
    if claimed is not None and (claimed in matching or not matching):
        # The claim settles it when one URL serves both regions (a sandbox), or when aud
        # names no API we know.
        return claimed
    if matching:
        return matching[0]
    raise InvalidIdToken("it names no known region, neither in aud nor in the region claim")


async def verify(
    http: httpx2.AsyncClient,
    hosts: PagerDutyHosts,
    *,
    discovery: OpenIdDiscovery,
    client_id: str,
    id_token: str,
    now: datetime,
) -> Identity:
    # The header first: a forgery costs no request to PagerDuty.
    header = _header(id_token)
    openid = await discovery.configuration(http)
    key = _pick_key(await fetch_signing_keys(http, openid.jwks_uri), header.get("kid"))
    claims = _verified_claims(id_token, key)
    _check_claims(claims, issuer=openid.issuer, client_id=client_id, now=now)
    subdomain = cast(str, claims["subdomain"]).lower()
    if not is_subdomain(subdomain):
        raise InvalidIdToken("its subdomain claim is not a DNS label")
    region = _region(claims, hosts)
    urls = hosts.region(region)
    return Identity(
        account_id=cast(str, claims["account_id"]),
        user_id=cast(str, claims["user_id"]),
        subdomain=subdomain,
        region=region,
        api_url=urls.api_url,
        events_url=urls.events_url,
    )
