"""X-Forwarded-For and X-Forwarded-Proto, believed only when they come from a peer listed in
PDCONNECT_TRUSTED_PROXIES.

Uvicorn's own handling stays off (`proxy_headers=False` in `pdconnect serve`: by default it
trusts 127.0.0.1, or whatever FORWARDED_ALLOW_IPS says); its middleware is installed here, in
create_app, so that every uvicorn worker and every test applies the same rule. With no trusted
proxy nothing is installed: the peer's own address and scheme stand, whatever it claims.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.config.model import Config


def trusted_proxy_middleware(config: Config) -> list[Middleware]:
    if not config.trusted_proxies:
        return []
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.trusted_proxies))]
