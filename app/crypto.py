"""Secrets at rest and keyed hashes.

`Vault` encrypts routing keys, OAuth tokens and webhook secrets with Fernet (AES-128-CBC plus
HMAC-SHA256, so tampering is detected). `ENCRYPTION_KEYS` is a list: the first key encrypts,
every key decrypts, so an operator rotates by putting a new key first; rows written before keep
decrypting with the old key, which stays in the list until they have been rewritten.

`Hasher` makes keyed HMAC-SHA256 digests for values we must recognise but never store: ingest
keys, and routing keys we must not add twice. Its key is derived from `SECRET_KEY` with a
purpose label, so the same secret never serves two uses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key: ENCRYPTION_KEYS lost a key."""


class Vault:
    def __init__(self, keys: tuple[bytes, ...]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise DecryptionError("stored secret cannot be decrypted with ENCRYPTION_KEYS") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt under the first key (a no-op in meaning, a new ciphertext in form)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise DecryptionError("stored secret cannot be decrypted with ENCRYPTION_KEYS") from exc


class Hasher:
    def __init__(self, secret_key: str, purpose: str) -> None:
        self._key = hmac.new(secret_key.encode("utf-8"), purpose.encode("utf-8"), "sha256").digest()

    def digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def new_fernet_key() -> str:
    return Fernet.generate_key().decode("ascii")


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
