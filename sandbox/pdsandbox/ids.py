"""Identifiers and secrets in PagerDuty's formats.

Every function takes its random source, so seeded data uses a fixed `random.Random` (the
same ids at every start) and everything made at run time uses `secrets.SystemRandom`.
"""

from __future__ import annotations

import random
import secrets
import string
import uuid

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_HEX = "0123456789abcdef"
_URLSAFE = string.ascii_letters + string.digits + "-_"

INTEGRATION_KEY_LENGTH = 32  # Events API routing keys are exactly 32 characters

system_random: random.Random = secrets.SystemRandom()


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def pd_id(rng: random.Random) -> str:
    """A PagerDuty object id: 7 uppercase alphanumerics beginning with "P"."""
    return "P" + _pick(rng, _UPPER_ALNUM, 6)


def integration_key(rng: random.Random) -> str:
    return _pick(rng, _HEX, INTEGRATION_KEY_LENGTH)


def ruleset_routing_key(rng: random.Random) -> str:
    """Ruleset keys begin with "R": the Events API refuses change events on them."""
    return "R" + _pick(rng, _UPPER_ALNUM, INTEGRATION_KEY_LENGTH - 1)


def uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def dedup_key(rng: random.Random) -> str:
    """The key PagerDuty makes for a trigger that came without one: a UUID as 32 hex digits,
    the form of the `incident_key` in its own v1 example."""
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex


def access_token(rng: random.Random) -> str:
    # The "+" is part of PagerDuty's real format: a client that forgets to URL-encode
    # tokens in a form body sends a space instead, and fails here as it would there.
    return f"pdus+_0X{_pick(rng, _UPPER_ALNUM, 5)}_{uuid4(rng)}"


def refresh_token(rng: random.Random) -> str:
    return f"pdus+_1X{_pick(rng, _UPPER_ALNUM, 5)}_{uuid4(rng)}"


def authorization_code(rng: random.Random) -> str:
    return _pick(rng, _URLSAFE, 40)


def webhook_secret(rng: random.Random) -> str:
    return _pick(rng, string.ascii_letters + string.digits + "+/", 64)
