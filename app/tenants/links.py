"""Sign-in links: signed with itsdangerous, expiring in minutes, single use.

The token carries only the id of a `login_links` row; the row holds the expiry (checked against
the injected clock) and is stamped when used, so a link opens one session once. The signature
stops anyone from guessing ids, and its own max age bounds a link even if a row lingers.
Links signed under the previous SECRET_KEY (SECRET_KEY_PREVIOUS) still open during a rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from databases import Database

from app.crypto import LinkSigner
from app.tenants import store

LINK_LIFETIME = LinkSigner.LIFETIME


@dataclass(frozen=True)
class LoginLink:
    url: str
    expires_at: datetime


async def issue_login_link(
    db: Database, signer: LinkSigner, *, base_url: str, tenant_id: UUID, now: datetime
) -> LoginLink:
    expires_at = now + LINK_LIFETIME
    link_id = await store.insert_login_link(db, tenant_id=tenant_id, expires_at=expires_at)
    return LoginLink(
        url=f"{base_url}/auth/link?token={signer.sign(link_id)}", expires_at=expires_at
    )


async def redeem_login_link(
    db: Database, signer: LinkSigner, *, token: str, now: datetime
) -> UUID | None:
    """The tenant the link signs in, or None if it is forged, used or expired."""
    link_id = signer.unsign(token)
    if link_id is None:
        return None
    return await store.use_login_link(db, link_id=link_id, now=now)
