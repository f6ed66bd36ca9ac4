"""PagerDuty's v3 webhook signature: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]`, each a hex
HMAC-SHA256 of the raw body with the subscription's secret. Several appear while PagerDuty
rotates a secret; one match is enough. Comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "x-pagerduty-signature"
_ONE = re.compile(r"^v1=([0-9a-fA-F]{64})$")
MAX_SIGNATURES = 10


class MalformedSignature(Exception):
    """The header is there but is not a list of `v1=<64 hex>` signatures."""


def signatures(header: str) -> list[bytes]:
    parts = [p.strip() for p in header.split(",") if p.strip()]
    if not parts or len(parts) > MAX_SIGNATURES:
        raise MalformedSignature("expected one or more v1=<hex> signatures")
    found: list[bytes] = []
    for part in parts:
        match = _ONE.match(part)
        if match is None:
            raise MalformedSignature("expected one or more v1=<hex> signatures")
        found.append(bytes.fromhex(match.group(1)))
    return found


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """True when any signature in the header is the body's with this secret."""
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    matched = False
    # Compare against every signature (no early exit): timing says nothing about which.
    for candidate in signatures(header):
        matched |= hmac.compare_digest(candidate, expected)
    return matched
