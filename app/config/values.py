"""How each setting is checked: one function per kind of value, each raising `ConfigError`
with a message that names the variable."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
from collections.abc import Callable
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

REGIONS = ("us", "eu")
SECRET_KEY_MIN_LENGTH = 32
# The PagerDuty URLs with one host per region, which may hold the `{region}` placeholder.
_REGIONAL_URLS = frozenset({"PAGERDUTY_API_URL", "PAGERDUTY_EVENTS_URL"})
ADMIN_TOKEN_MIN_LENGTH = 24


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def text(name: str, value: str) -> str:
    """Environment bytes that are not UTF-8 arrive as lone surrogates, which nothing
    downstream can encode; a NUL cannot be passed on to a path or a database."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{name} is not valid UTF-8 text") from None
    if "\x00" in value:
        raise ConfigError(f"{name} contains a NUL character")
    return value


def data_dir(value: str | None) -> Path:
    try:
        return Path(value or ".pdconnect").expanduser().resolve()
    except (RuntimeError, OSError) as exc:
        # RuntimeError: `~name/…` for a user who does not exist.
        raise ConfigError(f"PDCONNECT_DATA_DIR is not a usable path: {value!r}") from exc


def optional_port(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    # isdigit() alone takes "²", which int() refuses.
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), not {value!r}")
    return int(value)


def networks(name: str, value: str | None) -> tuple[str, ...]:
    """A comma list of IP addresses and CIDR networks, each written the one way
    `ipaddress` writes it (so `10.0.0.1/8` becomes `10.0.0.0/8`)."""
    networks: list[str] = []
    for item in (value or "").split(","):
        text = item.strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ConfigError(
                f"{name} must be a comma list of IP addresses or CIDR networks, not {text!r}"
            ) from exc
        single = network.prefixlen == network.max_prefixlen
        networks.append(str(network.network_address) if single else str(network))
    return tuple(networks)


def number(
    name: str, get: Callable[[str], str | None], default: float, low: float, high: float
) -> float:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number") from exc
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}")
    return value


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration(
    name: str, get: Callable[[str], str | None], default: float, low: float, high: float
) -> float:
    """Seconds, from a number of seconds or one with a unit: `90`, `90s`, `15m`, `1h`."""
    raw = get(name)
    if raw is None:
        return default
    text = raw.strip().lower()
    scale = _DURATION_UNITS.get(text[-1:], 1.0)
    if text[-1:] in _DURATION_UNITS:
        text = text[:-1]
    try:
        value = float(text) * scale
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a duration like 900, 90s, 15m or 1h, not {raw!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g} seconds")
    return value


def count(name: str, get: Callable[[str], str | None], default: int) -> int:
    """A whole number of at least 1: every cap is a cap (none can be turned off)."""
    raw = get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1_000_000:
        raise ConfigError(f"{name} must be a whole number between 1 and 1000000, not {raw!r}")
    return int(raw)


def whole(name: str, get: Callable[[str], str | None], default: int, low: int, high: int) -> int:
    """A whole number within bounds, where (unlike `count`) the low end may be 0."""
    raw = get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number between {low} and {high}, not {raw!r}")
    return int(raw)


def parse_encryption_keys(value: str | None) -> tuple[bytes, ...]:
    """A comma list of Fernet keys (urlsafe base64 of 32 bytes); the first one encrypts."""
    if not value:
        raise ConfigError("ENCRYPTION_KEYS is required (generate one with `pdconnect keygen`)")
    keys: list[bytes] = []
    for position, item in enumerate(value.split(","), start=1):
        key = item.strip().encode("ascii", errors="replace")
        try:
            raw = base64.urlsafe_b64decode(key)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ConfigError(
                f"ENCRYPTION_KEYS: key {position} is not a urlsafe base64 encoded 32-byte key"
            )
        keys.append(key)
    return tuple(keys)


def secret_key(value: str | None) -> str:
    if not value:
        raise ConfigError("SECRET_KEY is required")
    if len(value) < SECRET_KEY_MIN_LENGTH:
        raise ConfigError(f"SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} characters")
    return value


def secret_key_previous(value: str | None, current: str | None) -> str | None:
    if value is None:
        return None
    if len(value) < SECRET_KEY_MIN_LENGTH:
        raise ConfigError(
            f"SECRET_KEY_PREVIOUS must be at least {SECRET_KEY_MIN_LENGTH} characters"
        )
    if value == current:
        # Most likely a rotation half done: the new key was never put in SECRET_KEY.
        raise ConfigError("SECRET_KEY_PREVIOUS is the same as SECRET_KEY")
    return value


def admin_token(value: str | None) -> str:
    if not value:
        raise ConfigError("ADMIN_TOKEN is required")
    if len(value) < ADMIN_TOKEN_MIN_LENGTH:
        raise ConfigError(f"ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN_LENGTH} characters")
    return value


def database_url(value: str | None) -> str | None:
    if value is None:
        return None
    if _split("DATABASE_URL", value).scheme not in ("postgresql", "postgres"):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL")
    return value


def _split(name: str, value: str) -> SplitResult:
    try:
        return urlsplit(value)
    except ValueError as exc:  # an unclosed IPv6 bracket: "http://[::1"
        raise ConfigError(f"{name} is not a URL: {exc}") from exc


def url(name: str, value: str) -> str:
    parts = _split(name, value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not have a query or fragment")
    return value.rstrip("/")


def optional_url(name: str, value: str | None) -> str | None:
    """A PagerDuty URL, held to what app/pagerduty/hosts.py will accept at start-up."""
    if value is None:
        return None
    if "{region}" in value and name not in _REGIONAL_URLS:
        raise ConfigError(f"{name} serves every region and cannot contain {{region}}")
    # `{region}` is a placeholder: validate with a region filled in.
    filled = url(name, value.replace("{region}", REGIONS[0]))
    if "@" in _split(name, filled).netloc:
        raise ConfigError(f"{name} must not carry credentials")
    return value.rstrip("/")


# Standard Webhooks secrets: `whsec_` and the base64 of 24 to 64 random bytes.
WHSEC_PREFIX = "whsec_"
WHSEC_MIN_BYTES = 24
WHSEC_MAX_BYTES = 64
CALLBACK_URL_MAX_LENGTH = 2048


def whsec_key(value: str) -> bytes | None:
    """The key a `whsec_…` secret holds, or None when it is not one."""
    if not value.startswith(WHSEC_PREFIX):
        return None
    encoded = value[len(WHSEC_PREFIX) :]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if WHSEC_MIN_BYTES <= len(key) <= WHSEC_MAX_BYTES else None


def callback_secret(url: str | None, value: str | None) -> tuple[bytes, ...]:
    """PDCONNECT_CALLBACK_SECRET: one `whsec_` secret, or a comma list while rotating (each
    signs every callback, so receivers holding either verify)."""
    name = "PDCONNECT_CALLBACK_SECRET"
    if not value:
        if url is not None:
            raise ConfigError(f"{name} is required when PDCONNECT_CALLBACK_URL is set")
        return ()
    keys: list[bytes] = []
    for position, item in enumerate(value.split(","), start=1):
        key = whsec_key(item.strip())
        if key is None:
            raise ConfigError(
                f"{name}: secret {position} is not a Standard Webhooks secret (whsec_ and the "
                f"base64 of {WHSEC_MIN_BYTES} to {WHSEC_MAX_BYTES} bytes)"
            )
        keys.append(key)
    return tuple(keys)


def callback_url_problem(value: str) -> str | None:
    """What is wrong with a callback receiver's URL, or None. It is sent to as it is: a query
    (a receiver's own token) is allowed; a fragment never goes on the wire, and credentials in
    a URL end up in logs."""
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        return f"is not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.fragment or "@" in parts.netloc:
        return "must not have a fragment or credentials"
    if len(value) > CALLBACK_URL_MAX_LENGTH or not value.isprintable() or " " in value:
        return f"must be at most {CALLBACK_URL_MAX_LENGTH} printable characters without spaces"
    return None


def callback_url(value: str | None) -> str | None:
    if value is None:
        return None
    problem = callback_url_problem(value)
    if problem is not None:
        raise ConfigError(f"PDCONNECT_CALLBACK_URL {problem}")
    return value


def short_text(name: str, value: str | None, default: str, max_length: int) -> str:
    """A line of text shown to people (a product's name): printable, one line, not too long."""
    if value is None:
        return default
    if len(value) > max_length or not value.isprintable():
        raise ConfigError(f"{name} must be one line of at most {max_length} printable characters")
    return value
