"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver verifies
with any Standard Webhooks library, or with a few lines of HMAC.

    webhook-id:        the callback's id, the same on every attempt (receivers dedupe by it)
    webhook-timestamp: the attempt's time, in whole seconds since the epoch
    webhook-signature: "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>", one per
                       secret, separated by spaces (a secret being rotated out signs too)

A secret is `whsec_` and the base64 of its key; the key, not the text, is the HMAC key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime

from app.config.values import WHSEC_PREFIX, whsec_key

# 32 random bytes, within the 24 to 64 the specification asks for.
NEW_SECRET_BYTES = 32


def new_secret() -> str:
    return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(NEW_SECRET_BYTES)).decode()


def key_of(secret: str) -> bytes:
    """The key of a secret pdconnect stored (it checked or made every one)."""
    key = whsec_key(secret)
    if key is None:
        raise ValueError("not a Standard Webhooks secret")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(
    keys: Sequence[bytes], message_id: str, sent_at: datetime, body: bytes
) -> dict[str, str]:
    timestamp = int(sent_at.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(k, message_id, timestamp, body) for k in keys),
    }
