"""The RSA keys that sign id_tokens, and the JWKS that publishes them.

A key pair is made at start. Without a state file nothing persists, so id_tokens from an
earlier run no longer verify, much as after one of PagerDuty's key rotations; with one
(`pdsandbox.persistence`) the key is kept with the tokens it vouches for.

The "rogue" key signs with the *same* `kid` as the published key, so a client that merely
looks the `kid` up without checking the signature is caught as well as one that skips
verification altogether.
"""

from __future__ import annotations

import secrets
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

ALGORITHM = "RS256"


def _generate(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})


class SigningKeys:
    def __init__(self) -> None:
        # PagerDuty's kids are decimal strings such as "1787345008".
        self.kid = str(secrets.randbelow(9_000_000_000) + 1_000_000_000)
        self._current = _generate(self.kid)
        self._rogue: RSAKey | None = None  # made on first use: key generation is slow

    def snapshot(self) -> dict[str, Any]:
        """The published key, private part included, for the state file."""
        return {"kid": self.kid, "key": dict(self._current.as_dict(private=True))}

    def restore(self, data: dict[str, Any]) -> None:
        self.kid = str(data["kid"])
        self._current = RSAKey.import_key(data["key"])
        self._rogue = None

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet([self._current]).as_dict(private=False))

    def sign(self, claims: dict[str, Any], *, rogue: bool = False) -> str:
        if rogue and self._rogue is None:
            self._rogue = _generate(self.kid)
        key = self._rogue if rogue and self._rogue is not None else self._current
        return jwt.encode({"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}, claims, key)
