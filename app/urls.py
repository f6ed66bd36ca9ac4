"""Which URLs may become links: the one rule for what we render and what we send on.

Only absolute http and https URLs with a host. Anything else (`javascript:`, `data:`, `vbscript:`,
a relative path) is a script or a surprise for whoever clicks it, on our pages or in the
PagerDuty incident we forward it to.
"""

from __future__ import annotations

from urllib.parse import urlsplit

WEB_SCHEMES = ("http://", "https://")
HTTPS_ONLY = ("https://",)


def is_web_url(value: object, *, schemes: tuple[str, ...] = WEB_SCHEMES) -> bool:
    """The scheme must open the text exactly as written: a browser skips leading spaces and
    control characters, and drops tabs and newlines anywhere, so " javascript:…" and
    "java\\tscript:…" are scripts; only a check of the very first characters cannot be talked
    past."""
    if not isinstance(value, str) or not value[:8].lower().startswith(schemes):
        return False
    try:
        host = urlsplit(value).hostname
    except ValueError:  # a malformed port or IPv6 address
        return False
    return bool(host and host.strip())
