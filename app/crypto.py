"""Secrets at rest and keyed hashes.

`Vault` encrypts routing keys, OAuth tokens and webhook secrets with Fernet (AES-128-CBC plus
HMAC-SHA256, so tampering is detected). `ENCRYPTION_KEYS` is a list: the first key encrypts,
every key decrypts, so an operator rotates by putting a new key first; rows written before keep
decrypting with the old key until `pdconnect keys reencrypt` rewrites them under the new one
(app/encryption/), after which the old key can leave the list.

`Hasher` makes keyed HMAC-SHA256 digests for values we must recognise but never store: ingest
keys, and routing keys we must not add twice. Its key is derived from `SECRET_KEY` with a
purpose label, so the same secret never serves two uses. While `SECRET_KEY_PREVIOUS` is set it
also makes the digests the previous key made, so that what was hashed before a rotation is still
recognised (and re-hashed under the current key when it is next seen).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from itsdangerous import BadSignature, URLSafeTimedSerializer

# What each keyed digest or signature is for, so that one can never stand in for another. Each
# is written here once: a digest made with another salt would stop matching what is stored.
INGEST_KEY_SALT = "ingest-key"
ROUTING_KEY_SALT = "routing-key"
LOGIN_LINK_SALT = "pdconnect.login-link"


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key: ENCRYPTION_KEYS lost a key."""


class Vault:
    def __init__(self, keys: tuple[bytes, ...]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._keys = [Fernet(key) for key in keys]
        self._fernet = MultiFernet(self._keys)

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

    def key_position(self, token: str) -> int | None:
        """Which key of ENCRYPTION_KEYS opens `token` (0: the first, which encrypts), or None
        when none does. Fernet tokens do not name their key, so each is tried in turn."""
        data = token.encode("ascii", errors="replace")
        for position, fernet in enumerate(self._keys):
            try:
                fernet.decrypt(data)
            except InvalidToken:
                continue
            return position
        return None


class Hasher:
    def __init__(self, secret_key: str, purpose: str, previous: Sequence[str] = ()) -> None:
        self._key = _derive(secret_key, purpose)
        self._previous = tuple(_derive(key, purpose) for key in previous)

    def digest(self, value: str) -> str:
        """The digest under the current SECRET_KEY: the one to store."""
        return _digest(self._key, value)

    def previous_digests(self, value: str) -> tuple[str, ...]:
        """The digests under the keys SECRET_KEY replaced, to recognise what they hashed."""
        return tuple(_digest(key, value) for key in self._previous)


def _derive(secret_key: str, purpose: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), purpose.encode("utf-8"), "sha256").digest()


def _digest(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def new_fernet_key() -> str:
    return Fernet.generate_key().decode("ascii")


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class LinkSigner:
    """Signs the id of a sign-in link (app/tenants/links.py) with SECRET_KEY, accepting its
    predecessors' signatures while they rotate out."""

    # A link works once, for this long; its signature is good a minute longer (clock skew).
    LIFETIME = timedelta(minutes=15)

    def __init__(self, secret_key: str, previous: Sequence[str] = ()) -> None:
        # itsdangerous signs with the last key of the list and accepts any of them.
        keys = [*reversed(previous), secret_key]
        self._serializer = URLSafeTimedSerializer(keys, salt=LOGIN_LINK_SALT)

    def sign(self, link_id: UUID) -> str:
        return self._serializer.dumps(str(link_id))

    def unsign(self, token: str) -> UUID | None:
        try:
            value = self._serializer.loads(token, max_age=int(self.LIFETIME.total_seconds()) + 60)
            return UUID(str(value))
        except (BadSignature, ValueError):
            return None
