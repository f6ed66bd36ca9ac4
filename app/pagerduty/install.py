"""PagerDuty's Simple Install Flow: the install page URL, and the `config` it sends back.

Nothing in `config` is signed and it travels through the browser, so it is read as untrusted
input: bounded in size and count, every field checked, and each refusal names the field.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlencode

from app.pagerduty._text import SUBDOMAIN_MAX_LENGTH, is_subdomain, strip_controls
from app.pagerduty.errors import InvalidInstallConfig
from app.pagerduty.hosts import PagerDutyHosts

INSTALL_FLOW_VERSION = "2"
# A config of 100 keys is about 15 KB; browsers and servers cap URLs not far above this.
MAX_CONFIG_BYTES = 32 * 1024
MAX_INTEGRATION_KEYS = 100
NAME_MAX_LENGTH = 255
ID_MAX_LENGTH = 64
TYPE_MAX_LENGTH = 64
SERVICE_TYPE = "service"
KNOWN_TYPES = frozenset(
    {SERVICE_TYPE, "global_rule_set", "team_rule_set", "global_event_rules", "team_rules"}
)
# Integration (routing) keys are 32 characters (Events API v2 rejects any other length).
_INTEGRATION_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
# An id or type is a token: printable ASCII, no spaces.
_TOKEN = re.compile(r"^[\x21-\x7e]+$")


def install_url(hosts: PagerDutyHosts, *, app_id: str, redirect_url: str) -> str:
    """Put the caller's session-bound state inside `redirect_url`: PagerDuty passes its query
    parameters back and has no state of its own."""
    query = urlencode(
        {"app_id": app_id, "redirect_url": redirect_url, "version": INSTALL_FLOW_VERSION}
    )
    return f"{hosts.app_url}/install/integration?{query}"


@dataclass(frozen=True)
class InstalledKey:
    integration_key: str = field(repr=False)
    name: str
    id: str
    # As PagerDuty sent it: one of KNOWN_TYPES, or a newer type kept as is.
    type: str
    # Ruleset keys route by rules rather than to one service, and take no change events.
    is_ruleset: bool


@dataclass(frozen=True)
class InstallConfig:
    keys: tuple[InstalledKey, ...]
    subdomain: str
    # "" when PagerDuty sent no account name.
    account_name: str


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise InvalidInstallConfig(where, "must be a JSON object")
    return cast(Mapping[str, object], value)


def _string(obj: Mapping[str, object], key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        raise InvalidInstallConfig(where, "is missing")
    if not isinstance(value, str):
        raise InvalidInstallConfig(where, "must be a string")
    return value


def _token(obj: Mapping[str, object], key: str, where: str, max_length: int) -> str:
    value = _string(obj, key, where)
    if not 0 < len(value) <= max_length or not _TOKEN.fullmatch(value):
        raise InvalidInstallConfig(
            where, f"must be 1 to {max_length} printable characters without spaces"
        )
    return value


def _display_name(value: object, where: str, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if value is None:
        raise InvalidInstallConfig(where, "is missing")
    if not isinstance(value, str):
        raise InvalidInstallConfig(where, "must be a string")
    try:
        # JSON's \u escapes can carry a lone surrogate, which no database or page can hold.
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInstallConfig(where, "must be valid Unicode text") from None
    name = strip_controls(value)
    if required and not name:
        raise InvalidInstallConfig(where, "must not be empty")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInstallConfig(where, f"must be at most {NAME_MAX_LENGTH} characters")
    return name


def _installed_key(value: object, where: str) -> InstalledKey:
    entry = _object(value, where)
    key = _string(entry, "integration_key", f"{where}.integration_key")
    if not _INTEGRATION_KEY.fullmatch(key):
        # Never echo the value: it is a routing key.
        raise InvalidInstallConfig(f"{where}.integration_key", "must be 32 letters and digits")
    # PagerDuty's own example writes "Name"; every implementation reads "name".
    name_key = "Name" if entry.get("name") is None and "Name" in entry else "name"
    key_type = _token(entry, "type", f"{where}.type", TYPE_MAX_LENGTH)
    return InstalledKey(
        integration_key=key,
        name=_display_name(entry.get(name_key), f"{where}.{name_key}", required=True),
        id=_token(entry, "id", f"{where}.id", ID_MAX_LENGTH),
        type=key_type,
        is_ruleset=key_type != SERVICE_TYPE,
    )


def _installed_keys(value: object) -> tuple[InstalledKey, ...]:
    if value is None:
        raise InvalidInstallConfig("integration_keys", "is missing")
    if not isinstance(value, list):
        raise InvalidInstallConfig("integration_keys", "must be a list")
    entries = cast(list[object], value)
    if not entries:
        raise InvalidInstallConfig("integration_keys", "must not be empty")
    if len(entries) > MAX_INTEGRATION_KEYS:
        raise InvalidInstallConfig(
            "integration_keys", f"must hold at most {MAX_INTEGRATION_KEYS} keys"
        )
    unique: dict[str, InstalledKey] = {}
    for index, entry in enumerate(entries):
        installed = _installed_key(entry, f"integration_keys[{index}]")
        unique.setdefault(installed.integration_key, installed)
    return tuple(unique.values())


def _decode(raw: str) -> object:
    if len(raw.encode("utf-8", errors="surrogatepass")) > MAX_CONFIG_BYTES:
        raise InvalidInstallConfig("config", f"is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # RecursionError: deeply nested arrays fit in the size limit.
        raise InvalidInstallConfig("config", "is not valid JSON") from exc


def parse_install_config(raw: str) -> InstallConfig:
    """`raw` is the URL-decoded `config` query parameter of the install callback."""
    config = _object(_decode(raw), "config")
    keys = _installed_keys(config.get("integration_keys"))
    if config.get("account") is None:
        raise InvalidInstallConfig("account", "is missing")
    account = _object(config.get("account"), "account")
    subdomain = _string(account, "subdomain", "account.subdomain").lower()
    if not is_subdomain(subdomain):
        raise InvalidInstallConfig(
            "account.subdomain",
            f"must be a DNS label of at most {SUBDOMAIN_MAX_LENGTH} letters, digits and hyphens",
        )
    return InstallConfig(
        keys=keys,
        subdomain=subdomain,
        # Accept PagerDuty's "Name" spelling here too (see _installed_key).
        account_name=_display_name(
            account.get("name", account.get("Name")), "account.name", required=False
        ),
    )
