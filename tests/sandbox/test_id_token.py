"""The id_token: signed with a key the JWKS publishes, carrying PagerDuty's claims."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.sandbox.flow import (
    ACME_USER,
    BASE_URL,
    CLIENT_ID,
    GLOBEX_USER,
    FakeClock,
    connect,
)

# As on PagerDuty: the issuer on the app host, the document and the keys on the identity host.
ISSUER = f"{BASE_URL}/app/global/oauth/anonymous"
DISCOVERY = "/identity/global/oauth/anonymous/.well-known/openid-configuration"
JWKS = "/identity/global/oauth/anonymous/jwks"


async def _verified_claims(client: httpx2.AsyncClient, id_token: str) -> dict[str, Any]:
    jwks_uri = (await client.get(DISCOVERY)).json()["jwks_uri"]
    assert jwks_uri == f"{BASE_URL}{JWKS}"
    jwks = (await client.get(JWKS)).json()
    token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] in {k["kid"] for k in jwks["keys"]}
    return dict(token.claims)


@pytest.mark.parametrize(
    ("user", "subdomain", "account_id", "region", "api"),
    [
        (ACME_USER, "acme-corp", "PACME00", "UnitedStates", f"{BASE_URL}/us/api"),
        (GLOBEX_USER, "globex-eu", "PGLBX00", "EuropeanUnion", f"{BASE_URL}/eu/api"),
    ],
)
async def test_id_token_verifies_and_names_account_and_region(
    client: httpx2.AsyncClient,
    clock: FakeClock,
    user: str,
    subdomain: str,
    account_id: str,
    region: str,
    api: str,
) -> None:
    tokens = await connect(client, user=user)

    claims = await _verified_claims(client, tokens["id_token"])

    assert claims["iss"] == ISSUER
    assert claims["aud"] == [api, CLIENT_ID]
    assert claims["sub"] == user
    assert claims["user_id"] == user
    assert claims["account_id"] == account_id
    assert claims["subdomain"] == subdomain
    assert claims["region"] == region
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] > claims["iat"]
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_rogue_key_signatures_do_not_verify(client: httpx2.AsyncClient) -> None:
    switched = await client.post("/_sandbox/control", json={"id_token_key": "rogue"})
    assert switched.json()["id_token_key"] == "rogue"
    rogue = await connect(client)

    with pytest.raises(JoseError):
        await _verified_claims(client, rogue["id_token"])

    await client.post("/_sandbox/control", json={"id_token_key": "normal"})
    normal = await connect(client)
    assert (await _verified_claims(client, normal["id_token"]))["subdomain"] == "acme-corp"


async def test_discovery_document_points_at_the_endpoints(client: httpx2.AsyncClient) -> None:
    response = await client.get(DISCOVERY)

    doc = response.json()
    assert doc["issuer"] == ISSUER
    assert doc["jwks_uri"] == f"{BASE_URL}{JWKS}"
    assert doc["token_endpoint"] == f"{BASE_URL}/identity/oauth/token"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    # The issuer is not where the keys are: a client guessing it from the identity host fails.
    assert not doc["issuer"].startswith(f"{BASE_URL}/identity")
    assert (await client.get("/identity/global/oauth/anonymous")).status_code == 404


async def test_jwks_publishes_no_private_material(client: httpx2.AsyncClient) -> None:
    keys = (await client.get(JWKS)).json()["keys"]

    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(keys[0])
