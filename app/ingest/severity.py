"""Turning whatever a sender calls severity into one of PagerDuty's four.

Senders speak many scales: critical/high/medium/low, P1 to P5, SEV-1…SEV-4, syslog levels,
Zabbix's. Names compare without case, spaces, dashes or underscores, so `SEV-1`, `sev1`,
`Sev 1` and `SEV_1` are one name. A tenant's overrides win over the defaults; anything still
unknown, or no severity at all, gets the map's default (`error`, as Alertmanager's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from app.errors import InputError, key_name, text_problem

PD_SEVERITIES = ("critical", "error", "warning", "info")
DEFAULT_SEVERITY = "error"
OVERRIDES_MAX = 200
SEVERITY_NAME_MAX_LENGTH = 100

_IGNORED = re.compile(r"[\s_\-]+")


def normalize(raw: str) -> str:
    return _IGNORED.sub("", raw).casefold()


def _scale(names: str, severity: str) -> dict[str, str]:
    return {normalize(name): severity for name in names.split()}


DEFAULT_SEVERITY_MAP: Mapping[str, str] = MappingProxyType(
    {
        # PagerDuty's own, and the syslog levels (RFC 5424) with their short forms.
        **_scale("critical crit fatal emergency emerg alert panic disaster", "critical"),
        **_scale("error err severe major", "error"),
        **_scale("warning warn minor average", "warning"),
        **_scale("info informational information notice debug trace ok none", "info"),
        **_scale("notclassified", "info"),
        # critical/high/medium/low (Zabbix's "high" sits between disaster and average).
        **_scale("high", "error"),
        **_scale("medium moderate", "warning"),
        **_scale("low lowest", "info"),
        # Priorities and incident levels: 0 and 1 page hardest.
        **_scale("p0 p1 sev0 sev1 s0 s1", "critical"),
        **_scale("p2 sev2 s2", "error"),
        **_scale("p3 sev3 s3", "warning"),
        **_scale("p4 p5 sev4 sev5 s4 s5", "info"),
        # Google SRE's split: pages wake someone, tickets wait.
        **_scale("page", "critical"),
        **_scale("ticket", "warning"),
    }
)


@dataclass(frozen=True)
class SeverityMap:
    # As the tenant spelt them, to show back; looked up normalized.
    overrides: Mapping[str, str] = field(default_factory=dict)
    default: str = DEFAULT_SEVERITY
    _lookup: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))
        lookup = {normalize(k): v.strip().lower() for k, v in self.overrides.items()}
        object.__setattr__(self, "_lookup", MappingProxyType(lookup))

    def map(self, raw: str | None) -> str:
        if raw is None:
            return self.default
        name = normalize(raw)
        found = self._lookup.get(name) or DEFAULT_SEVERITY_MAP.get(name)
        return found if found in PD_SEVERITIES else self.default


def _pd_severity(value: object, path: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in PD_SEVERITIES:
        raise InputError(path, "must be one of critical, error, warning, info")
    return value.strip().lower()


def parse_severity_map(value: object) -> SeverityMap:
    """A tenant's table: `{"default": "error", "overrides": {"SEV-1": "critical", …}}`, both
    optional (null or `{}` is the default map)."""
    if value is None:
        return SeverityMap()
    if not isinstance(value, dict):
        raise InputError("", "severity map must be an object")
    unknown = sorted(key_name(k) for k in value if k not in ("default", "overrides"))
    if unknown:
        raise InputError(unknown[0], "unknown field; expected default and overrides")
    default = DEFAULT_SEVERITY
    if value.get("default") is not None:
        default = _pd_severity(value["default"], "default")
    table = value.get("overrides")
    if table is None:
        return SeverityMap(default=default)
    if not isinstance(table, dict):
        raise InputError("overrides", "must be an object of severity name to PagerDuty severity")
    if len(table) > OVERRIDES_MAX:
        raise InputError("overrides", f"at most {OVERRIDES_MAX} entries")
    overrides: dict[str, str] = {}
    first_spelling: dict[str, str] = {}
    for raw, target in table.items():
        if not isinstance(raw, str):
            raise InputError("overrides", "names must be strings")
        path = f"overrides.{key_name(raw)}"
        name = normalize(raw)
        if not name or len(raw) > SEVERITY_NAME_MAX_LENGTH or text_problem(raw):
            raise InputError(
                path, f"name must be 1 to {SEVERITY_NAME_MAX_LENGTH} characters of text"
            )
        if name in first_spelling:
            raise InputError(
                path,
                f"is the same name as {first_spelling[name]!r} "
                "(case, spaces, dashes and underscores are ignored)",
            )
        first_spelling[name] = raw
        overrides[raw.strip()] = _pd_severity(target, path)
    return SeverityMap(overrides=overrides, default=default)


def severity_map_to_json(severities: SeverityMap) -> dict[str, Any]:
    """The stored form `parse_severity_map` reads back."""
    return {"default": severities.default, "overrides": dict(severities.overrides)}
