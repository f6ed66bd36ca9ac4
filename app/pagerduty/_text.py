"""Cleaning text that came from outside (PagerDuty's answers, the browser) before we keep
or show it."""

import re
import unicodedata

# Bidirectional overrides can make a name display as something it is not.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_WHITESPACE_RUN = re.compile(r"\s+")

# A PagerDuty subdomain is one DNS label: letters, digits and inner hyphens.
SUBDOMAIN_MAX_LENGTH = 100
_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


def _is_control(char: str) -> bool:
    return char in _BIDI_CONTROLS or unicodedata.category(char) == "Cc"


def strip_controls(value: str) -> str:
    """Drop control characters, keep everything else, trim the ends."""
    return "".join(char for char in value if not _is_control(char)).strip()


def clean_message(value: str, limit: int = 300) -> str:
    """One line of foreign text, safe to log and to show: controls become spaces, runs of
    whitespace collapse, and it is cut to `limit` characters."""
    spaced = "".join(" " if _is_control(char) else char for char in value)
    line = _WHITESPACE_RUN.sub(" ", spaced).strip()
    if len(line) > limit:
        return line[: limit - 1] + "…"
    return line


def is_subdomain(value: str) -> bool:
    return len(value) <= SUBDOMAIN_MAX_LENGTH and _SUBDOMAIN.fullmatch(value) is not None
