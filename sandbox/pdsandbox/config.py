"""What a sandbox is started with: its public address and the apps registered in it.

An "app" here is what a vendor registers in PagerDuty's App Registration: OAuth credentials
with their exact redirect URIs and, for the Simple Install Flow, an Events Integration
`app_id`. Every seeded account can authorize every app, as with Classic User OAuth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_ACCESS_TOKEN_LIFETIME = 864000  # PagerDuty's documented `expires_in`
DEFAULT_REFRESH_TOKEN_LIFETIME = 210 * 86400  # Classic User OAuth refresh tokens
OPENID_PATH = "/global/oauth/anonymous"


@dataclass(frozen=True)
class SandboxApp:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]  # compared exactly, as PagerDuty does
    app_id: str | None = None  # Events Integration app id for the Simple Install Flow
    name: str = "Sandbox App"  # shown on the consent and install pages


@dataclass(frozen=True)
class WebhookSettings:
    """How v3 webhooks are delivered. The defaults are PagerDuty's: a 2xx within 5 s, retries
    with exponential backoff for about 48 hours, and 3 consecutive drops disable the
    subscription for 24 hours. Tests shorten the retry delays."""

    timeout_seconds: float = 5.0
    first_retry_seconds: float = 0.5
    retry_factor: float = 2.0
    max_retry_seconds: float = 3600.0
    # 0.5 s doubling to an hour, then hourly: the 61st attempt comes about 48 h after the first.
    max_attempts: int = 61
    disable_after_drops: int = 3
    disable_seconds: float = 86400.0
    rotation_overlap_seconds: float | None = None  # None: until the rotation is finished

    def retry_delay(self, attempts: int) -> float:
        """How long to wait after the `attempts`-th failed attempt."""
        exponent = min(max(attempts - 1, 0), 64)  # past this the cap has long been reached
        delay = self.first_retry_seconds * self.retry_factor**exponent
        return float(min(delay, self.max_retry_seconds))


@dataclass(frozen=True)
class SandboxConfig:
    base_url: str  # e.g. "http://127.0.0.1:8900", no trailing slash
    apps: tuple[SandboxApp, ...]
    access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME
    refresh_token_lifetime: int = DEFAULT_REFRESH_TOKEN_LIFETIME
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    def __post_init__(self) -> None:
        if self.base_url.endswith("/"):
            raise ValueError("SandboxConfig.base_url must not end with '/'")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("SandboxConfig.base_url must be an http(s) URL")

    def app_by_client_id(self, client_id: str) -> SandboxApp | None:
        return next((a for a in self.apps if a.client_id == client_id), None)

    def app_by_app_id(self, app_id: str) -> SandboxApp | None:
        return next((a for a in self.apps if a.app_id is not None and a.app_id == app_id), None)

    # One server stands in for all of PagerDuty's hosts; these prefixes replace the hosts.
    @property
    def identity_url(self) -> str:
        return f"{self.base_url}/identity"

    @property
    def web_url(self) -> str:
        return f"{self.base_url}/app"

    # As on PagerDuty, the id_tokens' issuer is on the app host, while the discovery document
    # that names it and the JWKS are on the identity host: a client that guesses the issuer
    # from the identity host fails here as it would there.
    @property
    def issuer(self) -> str:
        return f"{self.web_url}{OPENID_PATH}"

    @property
    def discovery_url(self) -> str:
        return f"{self.identity_url}{OPENID_PATH}/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        return f"{self.identity_url}{OPENID_PATH}/jwks"

    def api_url(self, region: str) -> str:
        return f"{self.base_url}/{region}/api"

    def events_url(self, region: str) -> str:
        return f"{self.base_url}/{region}/events"
