"""Where PagerDuty lives, per service region.

OAuth and the install page are global (US hosts serve both regions); the REST and Events APIs
are regional. Every URL can be overridden (the sandbox does), and an override may contain
`{region}` so one server can stand in for both regions.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

REGIONS = ("us", "eu")
REGION_PLACEHOLDER = "{region}"
# Where PagerDuty's OpenID issuer, discovery document and JWKS live, below their hosts.
OPENID_PATH = "/global/oauth/anonymous"

DEFAULT_IDENTITY_URL = "https://identity.pagerduty.com"
# No EU install page is documented; the US one serves EU accounts too.
DEFAULT_APP_URL = "https://app.pagerduty.com"
_DEFAULT_API_URLS = {"us": "https://api.pagerduty.com", "eu": "https://api.eu.pagerduty.com"}
_DEFAULT_EVENTS_URLS = {
    "us": "https://events.pagerduty.com",
    "eu": "https://events.eu.pagerduty.com",
}


@dataclass(frozen=True)
class RegionHosts:
    api_url: str
    events_url: str


@dataclass(frozen=True)
class PagerDutyHosts:
    identity_url: str
    app_url: str
    regions: Mapping[str, RegionHosts] = field(hash=False)

    def region(self, name: str) -> RegionHosts:
        try:
            return self.regions[name]
        except KeyError:
            expected = ", ".join(REGIONS)
            raise ValueError(
                f"Unknown PagerDuty region {name!r}; expected one of {expected}."
            ) from None

    @property
    def discovery_url(self) -> str:
        """PagerDuty's OpenID discovery document, served by the identity host."""
        return f"{self.identity_url}{OPENID_PATH}/.well-known/openid-configuration"

    @property
    def published_issuer(self) -> str:
        """The `iss` PagerDuty publishes: its discovery document puts it on the app host, not
        the identity host. Used only when the discovery document cannot be read
        (`app.pagerduty.discovery`); with overrides, on the overridden app host."""
        return f"{self.app_url}{OPENID_PATH}"

    @property
    def published_jwks_url(self) -> str:
        return f"{self.identity_url}{OPENID_PATH}/jwks"


def _checked(url: str, setting: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{setting} must be an absolute http(s) URL, got {url!r}.")
    if "@" in parts.netloc:
        # Do not echo it: the part before '@' may be a password.
        raise ValueError(f"{setting} must not carry credentials.")
    if parts.query or parts.fragment:
        raise ValueError(f"{setting} must have no query or fragment, got {url!r}.")
    return url


def _global(url: str | None, default: str, setting: str) -> str:
    if url is not None and REGION_PLACEHOLDER in url:
        raise ValueError(f"{setting} serves every region and cannot contain {REGION_PLACEHOLDER}.")
    return _checked(url or default, setting)


def _regional(url: str | None, defaults: Mapping[str, str], region: str, setting: str) -> str:
    if not url:
        return defaults[region]
    return _checked(url.replace(REGION_PLACEHOLDER, region), setting)


def pagerduty_hosts(
    identity_url: str | None = None,
    api_url: str | None = None,
    events_url: str | None = None,
    app_url: str | None = None,
) -> PagerDutyHosts:
    """Real PagerDuty by default; each argument overrides one host (None or "" keeps it)."""
    regions = {
        region: RegionHosts(
            api_url=_regional(api_url, _DEFAULT_API_URLS, region, "PAGERDUTY_API_URL"),
            events_url=_regional(events_url, _DEFAULT_EVENTS_URLS, region, "PAGERDUTY_EVENTS_URL"),
        )
        for region in REGIONS
    }
    return PagerDutyHosts(
        identity_url=_global(identity_url, DEFAULT_IDENTITY_URL, "PAGERDUTY_IDENTITY_URL"),
        app_url=_global(app_url, DEFAULT_APP_URL, "PAGERDUTY_APP_URL"),
        regions=MappingProxyType(regions),
    )
