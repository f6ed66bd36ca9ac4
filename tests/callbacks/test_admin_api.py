"""The operator's callbacks API: a tenant's own receiver (its secret shown once, stored
encrypted), rotation, the test callback, and the callbacks' history."""

from __future__ import annotations

from typing import Any

import httpx2

from app.config.model import Config
from app.deps import Deps
from tests.callbacks.support import new_whsec
from tests.conftest import admin_headers, make_settings

H = admin_headers()


async def _tenant(client: httpx2.AsyncClient) -> str:
    created = await client.post("/admin/v1/tenants", json={"name": "Acme"}, headers=H)
    tenant_id: str = created.json()["id"]
    return tenant_id


async def test_a_receiver_of_its_own_gets_a_secret_shown_once_and_stored_encrypted(
    client: httpx2.AsyncClient, deps: Deps
) -> None:
    tenant = await _tenant(client)
    url = f"/admin/v1/tenants/{tenant}/callback"
    assert (await client.get(url, headers=H)).json() == {
        "source": "none",
        "url": None,
        "secret_set": False,
        "previous_secret_until": None,
    }

    put = await client.put(url, json={"url": "https://hooks.example.com/pd?t=1"}, headers=H)
    assert put.status_code == 200, put.text
    secret = put.json()["secret"]
    assert secret.startswith("whsec_")
    shown = await client.get(url, headers=H)
    assert shown.json() == {
        "source": "tenant",
        "url": "https://hooks.example.com/pd?t=1",
        "secret_set": True,
        "previous_secret_until": None,
    }
    stored = await deps.db.fetch_val("SELECT secret_enc FROM tenant_callbacks")
    assert secret not in stored
    assert deps.vault.decrypt(stored) == secret
    # A new URL keeps the secret (and shows none).
    moved = await client.put(url, json={"url": "https://hooks.example.com/v2"}, headers=H)
    assert "secret" not in moved.json()
    kept = await deps.db.fetch_val("SELECT secret_enc FROM tenant_callbacks")
    assert deps.vault.decrypt(kept) == secret

    rotated = await client.post(f"{url}/rotate-secret", headers=H)
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in (secret, None)
    assert rotated.json()["previous_secret_until"] is not None

    assert (await client.delete(url, headers=H)).status_code == 204
    assert (await client.get(url, headers=H)).json()["source"] == "none"


async def test_a_given_secret_is_kept_and_bad_input_is_named(client: httpx2.AsyncClient) -> None:
    tenant = await _tenant(client)
    url = f"/admin/v1/tenants/{tenant}/callback"
    given = await client.put(
        url, json={"url": "http://10.0.0.5:8080/hooks", "secret": new_whsec()}, headers=H
    )
    assert given.status_code == 200
    assert "secret" not in given.json()

    refusals: list[tuple[dict[str, Any], str]] = [
        ({}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://user:pw@example.com/x"}, "url"),
        ({"url": "https://example.com/x#frag"}, "url"),
        ({"url": "https://example.com/x", "secret": "whsec_c2hvcnQ="}, "secret"),
        ({"url": "https://example.com/x", "secret": 12}, "secret"),
    ]
    for body, field in refusals:
        refused = await client.put(url, json=body, headers=H)
        assert refused.status_code == 422, body
        assert refused.json()["error"]["field"] == field


async def test_rotation_and_test_callbacks_need_somewhere_to_go(
    client: httpx2.AsyncClient,
) -> None:
    tenant = await _tenant(client)
    url = f"/admin/v1/tenants/{tenant}/callback"
    no_own = await client.post(f"{url}/rotate-secret", headers=H)
    assert no_own.status_code == 409
    assert "PDCONNECT_CALLBACK_SECRET" in no_own.json()["error"]["message"]
    assert (await client.post(f"{url}/test", headers=H)).status_code == 409


async def test_a_test_callback_is_listed_with_its_state(client: httpx2.AsyncClient) -> None:
    tenant = await _tenant(client)
    await client.put(
        f"/admin/v1/tenants/{tenant}/callback", json={"url": "https://h.example.com"}, headers=H
    )
    sent = await client.post(f"/admin/v1/tenants/{tenant}/callback/test", headers=H)
    assert sent.status_code == 202
    callback_id = sent.json()["id"]

    listed = await client.get(f"/admin/v1/tenants/{tenant}/callbacks?status=queued", headers=H)
    (item,) = listed.json()["callbacks"]
    assert item["id"] == callback_id
    assert item["type"] == "callback.test"
    assert item["status"] == "queued"
    assert item["attempts"] == 0
    assert item["history"] == []
    assert item["body"]["type"] == "callback.test"
    assert item["body"]["data"]["tenant"]["id"] == tenant
    one = await client.get(f"/admin/v1/tenants/{tenant}/callbacks/{callback_id}", headers=H)
    assert one.json() == item
    none = await client.get(f"/admin/v1/tenants/{tenant}/callbacks?status=delivered", headers=H)
    assert none.json() == {"callbacks": [], "next_before": None}

    other = await _tenant(client)
    hidden = await client.get(f"/admin/v1/tenants/{other}/callbacks/{callback_id}", headers=H)
    assert hidden.status_code == 404
    bad = await client.get(f"/admin/v1/tenants/{tenant}/callbacks?status=lost", headers=H)
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "status"
    anonymous = await client.get(f"/admin/v1/tenants/{tenant}/callbacks")
    assert anonymous.status_code == 401


def test_a_malformed_callback_secret_stops_start_up_with_one_line() -> None:
    import pytest

    from app.config.values import ConfigError

    with pytest.raises(ConfigError, match=r"^PDCONNECT_CALLBACK_SECRET: secret 1 is not a"):
        make_settings(PDCONNECT_CALLBACK_URL="https://h.example.com", PDCONNECT_CALLBACK_SECRET="x")
    with pytest.raises(ConfigError, match=r"^PDCONNECT_CALLBACK_SECRET is required"):
        make_settings(PDCONNECT_CALLBACK_URL="https://h.example.com")
    with pytest.raises(ConfigError, match=r"^PDCONNECT_CALLBACK_URL must be an absolute"):
        make_settings(PDCONNECT_CALLBACK_URL="hooks.example.com", PDCONNECT_CALLBACK_SECRET="x")
    config: Config = make_settings(
        PDCONNECT_CALLBACK_URL="https://h.example.com",
        PDCONNECT_CALLBACK_SECRET=f"{new_whsec()}, {new_whsec()}",
    )
    assert len(config.callback_secret) == 2
