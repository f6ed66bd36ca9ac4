"""PagerDuty's OpenID discovery document: who issues the id_tokens, and where its keys are.

PagerDuty serves the document on the identity host, and it names the issuer on the *app* host
(`https://app.pagerduty.com/global/oauth/anonymous`; the sample token encoded in PagerDuty's
docs carries its staging app host too) while the prose of those docs says `identity.`; the
JWKS is on the identity host. So the issuer is read from the document, never guessed.

The document is cached for `CACHE_SECONDS`: it changes rarely, and a connection should not
pay a round trip for it each time (the JWKS itself is still fetched per verification, since
keys rotate). When the document cannot be fetched or is malformed, the values PagerDuty
publishes are used (`PagerDutyHosts.published_issuer`, on the overridden hosts when URLs are
overridden), and the document is asked for again after `RETRY_SECONDS`, not for every token.

The document is untrusted input. `issuer` and `jwks_uri` must be absolute URLs without
credentials, query or fragment, and https when the document itself came over https (http is
accepted only from an http identity host: a sandbox on loopback). `jwks_uri` must be on the
document's own origin: a tampered document cannot send the key lookup to another host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2

from app.pagerduty._http import error_for, transport_errors
from app.pagerduty._wire import as_object, read_json
from app.pagerduty.errors import MalformedResponse, RetryLater
from app.pagerduty.hosts import PagerDutyHosts

log = logging.getLogger("pdconnect.pagerduty")

CACHE_SECONDS = 6 * 3600.0
# Short enough that a blip does not pin the fallback for hours, long enough that an outage of
# the identity host does not cost one failed fetch per connection.
RETRY_SECONDS = 300.0
DOCUMENT_MAX_BYTES = 64 * 1024
URL_MAX_LENGTH = 2048
DISCOVERY_SERVICE = "PagerDuty's OpenID discovery document"


@dataclass(frozen=True)
class OpenIdConfiguration:
    issuer: str
    jwks_uri: str
    discovered: bool  # False: PagerDuty's published values, the document being unusable


def published_configuration(hosts: PagerDutyHosts) -> OpenIdConfiguration:
    return OpenIdConfiguration(
        issuer=hosts.published_issuer, jwks_uri=hosts.published_jwks_url, discovered=False
    )


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _checked_url(value: object, name: str, *, document_url: str) -> str:
    if not isinstance(value, str) or not value or len(value) > URL_MAX_LENGTH:
        raise MalformedResponse(f"the discovery document's {name} is missing or not a URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise MalformedResponse(f"the discovery document's {name} is not a URL") from exc
    schemes = ("https",) if urlsplit(document_url).scheme == "https" else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        raise MalformedResponse(f"the discovery document's {name} is not an https URL")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise MalformedResponse(f"the discovery document's {name} carries more than a URL")
    return value


def parse_document(body: object, *, document_url: str) -> OpenIdConfiguration:
    document: Mapping[str, object] = as_object(body, "the discovery document")
    issuer = _checked_url(document.get("issuer"), "issuer", document_url=document_url)
    jwks_uri = _checked_url(document.get("jwks_uri"), "jwks_uri", document_url=document_url)
    if _origin(jwks_uri) != _origin(document_url):
        raise MalformedResponse("the discovery document's jwks_uri is on another host")
    # Kept exactly as written: OpenID Connect Discovery wants `iss` identical to it.
    return OpenIdConfiguration(issuer=issuer, jwks_uri=jwks_uri, discovered=True)


async def fetch_document(http: httpx2.AsyncClient, url: str) -> OpenIdConfiguration:
    async with transport_errors(DISCOVERY_SERVICE):
        response = await http.get(url, headers={"Accept": "application/json"})
    error = error_for(response, DISCOVERY_SERVICE)
    if isinstance(error, RetryLater):
        raise error
    if error is not None:
        raise MalformedResponse(f"the discovery document answered HTTP {response.status_code}")
    if len(response.content) > DOCUMENT_MAX_BYTES:
        raise MalformedResponse("the discovery document is too large")
    return parse_document(read_json(response), document_url=url)


class OpenIdDiscovery:
    """One per application: the cached configuration of the configured identity host."""

    def __init__(
        self,
        hosts: PagerDutyHosts,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = CACHE_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.hosts = hosts
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._retry_seconds = retry_seconds
        self._cached: OpenIdConfiguration | None = None
        self._fresh_until = 0.0

    async def configuration(self, http: httpx2.AsyncClient) -> OpenIdConfiguration:
        now = self._clock()
        if self._cached is not None and now < self._fresh_until:
            return self._cached
        url = self.hosts.discovery_url
        try:
            config = await fetch_document(http, url)
        except RetryLater as exc:  # MalformedResponse included
            config = published_configuration(self.hosts)
            log.warning(
                "%s at %s is unusable (%s); using PagerDuty's published issuer %s",
                DISCOVERY_SERVICE,
                url,
                exc,
                config.issuer,
            )
            self._fresh_until = now + self._retry_seconds
        else:
            self._fresh_until = now + self._cache_seconds
        self._cached = config
        return config
