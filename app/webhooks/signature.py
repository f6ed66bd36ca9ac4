"""PagerDuty's v3 webhook signature: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]`, each a hex
HMAC-SHA256 of the raw body with the subscription's secret. Several appear while PagerDuty
rotates a secret; one match is enough. Comparison is constant-time.

PagerDuty's recipe ("Verifying Signatures") selects only the `v1` entries: an entry of another
scheme is skipped, so a scheme PagerDuty adds later beside `v1` does not get its deliveries
refused. A header with no usable `v1` entry cannot verify, and is refused as unauthenticated
like a signature that does not match."""

from __future__ import annotations

import hashlib
import hmac
import re

SIGNATURE_HEADER = "x-pagerduty-signature"
V1_PREFIX = "v1="
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
# PagerDuty sends one entry per live secret (two during a rotation); this bounds the work a
# forged header can ask for.
MAX_SIGNATURES = 10


class MalformedSignature(Exception):
    """The header is there but holds no `v1=<64 hex>` signature to check (or far too many
    entries): nothing in it can verify the body."""


def signatures(header: str) -> list[bytes]:
    """The `v1` signatures in the header, as digests."""
    parts = [p.strip() for p in header.split(",") if p.strip()]
    if len(parts) > MAX_SIGNATURES:
        raise MalformedSignature(f"has more than {MAX_SIGNATURES} entries")
    found = [
        bytes.fromhex(part[len(V1_PREFIX) :])
        for part in parts
        # A `v1=` value that is not 64 hex digits is no HMAC-SHA256 of anything: it could
        # never match, so it is skipped like an entry of another scheme.
        if part.startswith(V1_PREFIX) and _HEX_DIGEST.fullmatch(part, len(V1_PREFIX))
    ]
    if not found:
        raise MalformedSignature("has no v1=<hex> signature")
    return found


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """True when any `v1` signature in the header is the body's with this secret."""
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    matched = False
    # Compare against every signature (no early exit): timing says nothing about which.
    for candidate in signatures(header):
        matched |= hmac.compare_digest(candidate, expected)
    return matched
