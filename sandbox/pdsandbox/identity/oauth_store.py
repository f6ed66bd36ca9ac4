"""Authorization codes, grants and tokens, with the checks PagerDuty's token endpoint makes.

Errors are raised as `OAuthError`, whose `error` is the RFC 6749 code the token endpoint
answers with. Every check reads the sandbox clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from pdsandbox import ids
from pdsandbox.config import SandboxApp
from pdsandbox.models import AuthorizationCode, Grant, IssuedToken

CODE_LIFETIME_SECONDS = 30  # PagerDuty: "The authorization code is valid for 30 seconds."
# RFC 7636 section 4.1: 43 to 128 characters from the unreserved set.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class TokenPair:
    grant: Grant
    access: IssuedToken
    refresh: IssuedToken


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_challenge(challenge: str) -> bool:
    return _S256_CHALLENGE.fullmatch(challenge) is not None


class OAuthStore:
    def __init__(
        self,
        now: Callable[[], float],
        access_lifetime: int,
        refresh_lifetime: int,
        rng: random.Random = ids.system_random,
    ) -> None:
        self._now = now
        self._rng = rng
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self.codes: dict[str, AuthorizationCode] = {}
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, IssuedToken] = {}

    def issue_code(
        self,
        client_id: str,
        redirect_uri: str,
        user_id: str,
        scope: str,
        code_challenge: str | None,
    ) -> AuthorizationCode:
        code = AuthorizationCode(
            code=ids.authorization_code(self._rng),
            client_id=client_id,
            redirect_uri=redirect_uri,
            user_id=user_id,
            scope=scope,
            code_challenge=code_challenge,
            issued_at=self._now(),
        )
        self.codes[code.code] = code
        return code

    def exchange_code(
        self,
        app: SandboxApp,
        code_value: str,
        redirect_uri: str | None,
        verifier: str | None,
        account_of_user: Callable[[str], str],
    ) -> TokenPair:
        code = self.codes.get(code_value)
        if code is None or code.client_id != app.client_id:
            raise OAuthError("invalid_grant", "The authorization code is invalid.")
        if code.grant_id is not None:
            # A replayed code may have been stolen: withdraw what it already gave (RFC 9700).
            self.revoke_grant(code.grant_id)
            raise OAuthError("invalid_grant", "The authorization code has already been used.")
        if self._now() - code.issued_at > CODE_LIFETIME_SECONDS:
            raise OAuthError("invalid_grant", "The authorization code has expired.")
        if redirect_uri != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization.")
        self._check_pkce(code.code_challenge, verifier)
        grant = Grant(
            id=ids.uuid4(self._rng),
            client_id=app.client_id,
            user_id=code.user_id,
            account_id=account_of_user(code.user_id),
            scope=code.scope,
            created_at=self._now(),
        )
        self.grants[grant.id] = grant
        self.codes[code_value] = replace(code, grant_id=grant.id)
        return self._issue_pair(grant)

    def _check_pkce(self, challenge: str | None, verifier: str | None) -> None:
        if challenge is None:
            if verifier is not None:
                # Refusing this blocks a PKCE downgrade (OAuth 2.1, section 4.1.3).
                raise OAuthError("invalid_grant", "code_verifier sent but no code_challenge.")
            return
        if verifier is None:
            raise OAuthError("invalid_grant", "code_verifier is required.")
        if _VERIFIER.fullmatch(verifier) is None:
            raise OAuthError("invalid_grant", "code_verifier is malformed.")
        if not hmac.compare_digest(s256(verifier), challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match code_challenge.")

    def refresh(self, app: SandboxApp, value: str) -> TokenPair:
        token = self.tokens.get(value)
        grant = self.grants.get(token.grant_id) if token is not None else None
        if (
            token is None
            or grant is None
            or token.kind != "refresh"
            or grant.client_id != app.client_id
            or grant.revoked
            or not token.usable(self._now())
        ):
            raise OAuthError("invalid_grant", "The refresh token is invalid or expired.")
        # Rotation: the refresh token just spent never works again.
        self.tokens[value] = replace(token, rotated=True)
        return self._issue_pair(grant)

    def _issue_pair(self, grant: Grant) -> TokenPair:
        now = self._now()
        access = IssuedToken(
            ids.access_token(self._rng), "access", grant.id, now, now + self.access_lifetime
        )
        refresh = IssuedToken(
            ids.refresh_token(self._rng), "refresh", grant.id, now, now + self.refresh_lifetime
        )
        self.tokens[access.value] = access
        self.tokens[refresh.value] = refresh
        return TokenPair(grant, access, refresh)

    def revoke(self, app: SandboxApp, value: str) -> None:
        """Revoke the grant behind a token; unknown tokens are ignored (RFC 7009)."""
        token = self.tokens.get(value)
        if token is None:
            return
        grant = self.grants.get(token.grant_id)
        if grant is not None and grant.client_id == app.client_id:
            self.revoke_grant(grant.id)

    def revoke_grant(self, grant_id: str) -> None:
        grant = self.grants.get(grant_id)
        if grant is not None:
            self.grants[grant_id] = replace(grant, revoked=True)

    def authenticate(self, access_token: str) -> Grant | None:
        """The live grant behind a bearer token, or None (unknown, expired or revoked)."""
        token = self.tokens.get(access_token)
        if token is None or token.kind != "access" or not token.usable(self._now()):
            return None
        grant = self.grants.get(token.grant_id)
        if grant is None or grant.revoked:
            return None
        return grant

    def expire_access_tokens(self, account_id: str) -> int:
        now = self._now()
        expired = 0
        for value, token in list(self.tokens.items()):
            grant = self.grants[token.grant_id]
            if token.kind == "access" and grant.account_id == account_id and token.usable(now):
                self.tokens[value] = replace(token, expires_at=now)
                expired += 1
        return expired

    def revoke_account(self, account_id: str) -> int:
        live = [g for g in self.grants.values() if g.account_id == account_id and not g.revoked]
        for grant in live:
            self.revoke_grant(grant.id)
        return len(live)

    def snapshot(self) -> dict[str, Any]:
        """Codes, grants and tokens as JSON-ready data, for the state file."""
        return {
            "codes": [asdict(c) for c in self.codes.values()],
            "grants": [asdict(g) for g in self.grants.values()],
            "tokens": [asdict(t) for t in self.tokens.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.codes = {c["code"]: AuthorizationCode(**c) for c in data["codes"]}
        self.grants = {g["id"]: Grant(**g) for g in data["grants"]}
        self.tokens = {t["value"]: IssuedToken(**t) for t in data["tokens"]}

    def grants_of_account(self, account_id: str) -> list[Grant]:
        return [g for g in self.grants.values() if g.account_id == account_id]

    def tokens_of_grant(self, grant_id: str) -> list[IssuedToken]:
        return [t for t in self.tokens.values() if t.grant_id == grant_id]
