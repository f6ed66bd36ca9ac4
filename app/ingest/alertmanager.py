"""Prometheus Alertmanager's webhook (version 4).

"group" mode (the default) makes one alert per webhook, exactly as Alertmanager's own
PagerDuty notifier (notify/pagerduty/pagerduty.go with template/default.tmpl) builds it, so
moving a receiver from `pagerduty_configs` to us changes nothing on the PagerDuty side:

- dedup_key: sha256 hex of the groupKey (notify.Key.Hash)
- summary: `pagerduty.default.description`, i.e. `__subject`:
  `[FIRING:1] <group label values> (<other common label values>)`
- source and client: "Alertmanager"; client_url: the webhook's externalURL (the stock
  `__alertmanagerURL` template adds `/#/alerts?receiver=…`; the captured events carry the
  bare externalURL, and we match them)
- severity: commonLabels.severity (the severity map's default, `error`, as Alertmanager's)
- custom_details: Alertmanager's default details, `firing`/`resolved` rendered by
  `__text_alert_list`, and `num_firing`/`num_resolved`, all strings
- a resolve carries all of the above too, as Alertmanager's does

"alert" mode makes one alert per Alertmanager alert, keyed by its fingerprint, for tenants who
want each alert to open and resolve on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from app.errors import InputError
from app.ingest._values import (
    is_iso_8601,
    join,
    optional_list,
    optional_object,
    optional_text,
    string_map,
)
from app.ingest.alert import Alert, Link, Status

WEBHOOK_VERSION = "4"
CLIENT = "Alertmanager"
ALERTNAME = "alertname"
# Alert mode makes one event per alert; Alertmanager's `max_alerts` keeps a webhook under it.
ALERT_MODE_MAX = 1000

Mode = Literal["group", "alert"]


def parse_alertmanager(body: object, *, mode: Mode = "group") -> list[Alert]:
    if not isinstance(body, dict):
        raise InputError("", "an Alertmanager webhook must be a JSON object")
    obj: dict[Any, Any] = body
    version = obj.get("version")
    if version != WEBHOOK_VERSION:
        raise InputError("version", f"must be {WEBHOOK_VERSION!r} (Alertmanager's webhook format)")
    alerts = [_member(item, f"alerts[{i}]") for i, item in enumerate(_alert_list(obj))]
    external_url = optional_text(obj, "externalURL", "")
    if mode == "alert":
        if len(alerts) > ALERT_MODE_MAX:
            raise InputError(
                "alerts",
                f"alert mode takes at most {ALERT_MODE_MAX} alerts; set max_alerts in the "
                "webhook config, or use group mode",
            )
        return [_one(member, external_url) for member in alerts]
    return [_group(obj, alerts, external_url)]


def _alert_list(obj: dict[Any, Any]) -> list[Any]:
    items = optional_list(obj, "alerts", "")
    if not items:
        raise InputError("alerts", "must hold at least one alert")
    return items


def _status(obj: dict[Any, Any], path: str) -> Literal["firing", "resolved"]:
    raw = obj.get("status")
    if raw == "firing":
        return "firing"
    if raw == "resolved":
        return "resolved"
    raise InputError(join(path, "status"), "must be firing or resolved")


def _kv(obj: dict[Any, Any], key: str, prefix: str) -> dict[str, str]:
    value = optional_object(obj, key, prefix)
    return {} if value is None else string_map(value, join(prefix, key))


@dataclass(frozen=True)
class _Member:
    """One alert of the webhook, checked and reduced to what we read."""

    path: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str
    fingerprint: str | None
    starts_at: str | None
    ends_at: str | None


def _member(value: object, path: str) -> _Member:
    if not isinstance(value, dict):
        raise InputError(path, "must be an object")
    obj: dict[Any, Any] = value
    return _Member(
        path=path,
        status=_status(obj, path),
        labels=_kv(obj, "labels", path),
        annotations=_kv(obj, "annotations", path),
        generator_url=optional_text(obj, "generatorURL", path) or "",
        fingerprint=optional_text(obj, "fingerprint", path),
        starts_at=optional_text(obj, "startsAt", path),
        ends_at=optional_text(obj, "endsAt", path),
    )


def sorted_pairs(kv: dict[str, str]) -> list[tuple[str, str]]:
    """Alertmanager's KV.SortedPairs: alertname first, then by name."""
    return sorted(kv.items(), key=lambda pair: (pair[0] != ALERTNAME, pair[0]))


def subject(status: str, num_firing: int, group: dict[str, str], common: dict[str, str]) -> str:
    """Alertmanager's `__subject` template, character for character (its trailing space
    included when no common label is left over)."""
    head = f"[{status.upper()}{f':{num_firing}' if status == 'firing' else ''}]"
    text = f"{head} {' '.join(v for _, v in sorted_pairs(group))} "
    if len(common) > len(group):
        rest = {k: v for k, v in common.items() if k not in group}
        text += f"({' '.join(v for _, v in sorted_pairs(rest))})"
    return text


def text_alert_list(members: list[_Member]) -> str:
    """Alertmanager's `__text_alert_list` template."""
    out = []
    for member in members:
        out.append("Labels:\n")
        out.extend(f" - {k} = {v}\n" for k, v in sorted_pairs(member.labels))
        out.append("Annotations:\n")
        out.extend(f" - {k} = {v}\n" for k, v in sorted_pairs(member.annotations))
        out.append(f"Source: {member.generator_url}\n")
    return "".join(out)


def _group(obj: dict[Any, Any], members: list[_Member], external_url: str | None) -> Alert:
    group_key = optional_text(obj, "groupKey", "")
    if group_key is None:
        raise InputError("groupKey", "required in group mode")
    status = _status(obj, "")
    group_labels = _kv(obj, "groupLabels", "")
    common_labels = _kv(obj, "commonLabels", "")
    firing = [m for m in members if m.status == "firing"]
    resolved = [m for m in members if m.status == "resolved"]
    return Alert(
        status=status,
        dedup_key=hashlib.sha256(group_key.encode()).hexdigest(),
        summary=subject(status, len(firing), group_labels, common_labels),
        severity=common_labels.get("severity"),
        source=CLIENT,
        component=None,
        group=None,
        class_=None,
        # The labels every alert shares, to route by; the details already list them.
        labels=common_labels,
        details={
            "firing": text_alert_list(firing),
            "resolved": text_alert_list(resolved),
            "num_firing": str(len(firing)),
            "num_resolved": str(len(resolved)),
        },
        links=(),
        images=(),
        timestamp=None,
        service=None,
        client=CLIENT,
        client_url=external_url,
        mirrors_sender=True,
    )


def _one(member: _Member, external_url: str | None) -> Alert:
    if member.fingerprint is None:
        raise InputError(join(member.path, "fingerprint"), "required in alert mode")
    status: Status = member.status
    labels, annotations = member.labels, member.annotations
    # When it started firing, or when it stopped.
    stamp_field, timestamp = (
        ("startsAt", member.starts_at) if status == "firing" else ("endsAt", member.ends_at)
    )
    if timestamp is not None and not is_iso_8601(timestamp):
        raise InputError(join(member.path, stamp_field), "must be an RFC 3339 time")
    summary = annotations.get("summary", "").strip() or _label_summary(labels)
    generator = member.generator_url
    return Alert(
        status=status,
        dedup_key=member.fingerprint,
        summary=summary,
        severity=labels.get("severity"),
        source=labels.get("instance") or labels.get("job") or CLIENT,
        component=None,
        group=None,
        class_=None,
        labels=labels,
        details={"annotations": annotations} if annotations else {},
        links=(Link(href=generator, text="Source"),) if generator else (),
        images=(),
        timestamp=timestamp,
        service=None,
        client=CLIENT,
        client_url=external_url,
    )


def _label_summary(labels: dict[str, str]) -> str:
    """`DiskFull (instance=db1:9100 severity=critical)` when no summary annotation says more."""
    name = labels.get(ALERTNAME, "")
    rest = " ".join(f"{k}={v}" for k, v in sorted_pairs(labels) if k != ALERTNAME)
    return f"{name} ({rest})" if name and rest else (name or rest or "Alertmanager alert")
