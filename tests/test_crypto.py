"""Secrets at rest: encrypted, authenticated, and readable across key rotation."""

from __future__ import annotations

import pytest

from app.crypto import DecryptionError, Hasher, Vault, new_fernet_key


def test_encrypt_round_trip_hides_the_plaintext() -> None:
    vault = Vault((new_fernet_key().encode(),))
    token = vault.encrypt("routing-key-abcdef0123456789abcd")
    assert "routing-key" not in token
    assert vault.decrypt(token) == "routing-key-abcdef0123456789abcd"
    assert vault.encrypt("same") != vault.encrypt("same")


def test_rotation_keeps_old_rows_readable() -> None:
    old, new = new_fernet_key().encode(), new_fernet_key().encode()
    before = Vault((old,)).encrypt("token-1")
    rotated = Vault((new, old))
    assert rotated.decrypt(before) == "token-1"
    after = rotated.encrypt("token-2")
    # Written under the new key: readable without the old one.
    assert Vault((new,)).decrypt(after) == "token-2"
    assert Vault((new,)).decrypt(rotated.rotate(before)) == "token-1"
    with pytest.raises(DecryptionError):
        Vault((new,)).decrypt(before)


def test_tampered_ciphertext_is_refused() -> None:
    vault = Vault((new_fernet_key().encode(),))
    token = vault.encrypt("secret")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(DecryptionError):
        vault.decrypt(tampered)


def test_hasher_is_keyed_and_separated_by_purpose() -> None:
    a = Hasher("secret-one" * 4, "ingest-key")
    assert a.digest("pdc_x") == Hasher("secret-one" * 4, "ingest-key").digest("pdc_x")
    assert a.digest("pdc_x") != Hasher("secret-two" * 4, "ingest-key").digest("pdc_x")
    assert a.digest("pdc_x") != Hasher("secret-one" * 4, "routing-key").digest("pdc_x")
