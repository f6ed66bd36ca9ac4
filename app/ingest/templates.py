"""A rule's templates: what the PagerDuty event says, built from the alert's fields and labels.

A small placeholder language rather than Jinja: text with `{{ path | filter:arg … }}`, where a
path is a field (`summary`, `severity`, `source`, `component`, `group`, `class`, `dedup_key`,
`status`, `service`), a label (`labels.instance`) or a custom detail (`details.a.b`), and the
filters are `default:"text"` (when the value is absent or empty), `upper`, `lower`, `trim` and
`truncate:N`. It has no loops, calls or attribute access, so rendering costs one pass over the
parsed template plus the text it copies: bounded by TEMPLATE_MAX_LENGTH and the alert's own
limits, whatever the tenant writes. Jinja's sandbox is safe but not bounded (nested loops over
`range` are allowed) and costs several times more per alert: `python -m bench.templates`.

Templates are parsed when a rule is saved (errors name the field and the problem) and again
when the routing view is loaded; ingest only renders. A template whose result is empty leaves
the alert's own value: a rule cannot blank a summary or a dedup key. PagerDuty's limits
(app/ingest/mapping.py) apply after rendering.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from app.errors import InputError
from app.ingest._values import check_text
from app.ingest.alert import Alert, Link

# Fields a rule may set, as the rules API and the stored JSON name them.
TEXT_FIELDS = ("summary", "source", "component", "group", "class", "severity", "dedup_key")
TEMPLATE_MAX_LENGTH = 2048
PLACEHOLDERS_MAX = 50
DETAILS_MAX = 30
LINKS_MAX = 5
DETAIL_NAME_MAX_LENGTH = 100
TRUNCATE_MAX = 100_000
# A rendered value is cut here whatever the template says, before PagerDuty's own limits:
# a template repeating a 1 KiB label 50 times stays a bounded string.
RENDERED_MAX_LENGTH = 16_384
FIELD_PATHS = (
    "summary",
    "severity",
    "source",
    "component",
    "group",
    "class",
    "dedup_key",
    "status",
    "service",
)
FILTERS = ("default", "upper", "lower", "trim", "truncate")

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PATH = re.compile(r"^(labels|details)\.(.+)$")
_FILTER = re.compile(r'^\s*([a-z]+)\s*(?::\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+)))?\s*$')
_ATTRIBUTES = {"class": "class_"}


@dataclass(frozen=True)
class Filter:
    name: str
    text: str | None = None
    number: int | None = None


@dataclass(frozen=True)
class Placeholder:
    # ("summary",), ("labels", "instance") or ("details", "a", "b").
    path: tuple[str, ...]
    filters: tuple[Filter, ...]


Part = str | Placeholder


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Shaping:
    """A rule's parsed templates; None where the rule sets nothing."""

    fields: Mapping[str, Template]
    details: Mapping[str, Template]
    links: tuple[tuple[Template, Template | None], ...]

    def sets(self, name: str) -> bool:
        return name in self.fields


def parse_template(source: object, field: str) -> Template:
    if not isinstance(source, str):
        raise InputError(field, "must be a string")
    if len(source) > TEMPLATE_MAX_LENGTH:
        raise InputError(field, f"at most {TEMPLATE_MAX_LENGTH} characters")
    # Stored as jsonb, which holds no NUL character, and sent as UTF-8.
    check_text(source, field)
    parts: list[Part] = []
    at = 0
    for found in _PLACEHOLDER.finditer(source):
        if found.start() > at:
            parts.append(_literal(source[at : found.start()], field))
        parts.append(_placeholder(found.group(1), field))
        at = found.end()
    if at < len(source):
        parts.append(_literal(source[at:], field))
    if sum(isinstance(p, Placeholder) for p in parts) > PLACEHOLDERS_MAX:
        raise InputError(field, f"at most {PLACEHOLDERS_MAX} placeholders")
    return Template(source, tuple(parts))


def _literal(text: str, field: str) -> str:
    if "{{" in text or "}}" in text:
        raise InputError(field, "a placeholder is not closed: write {{ labels.name }}")
    return text


def _placeholder(inner: str, field: str) -> Placeholder:
    pieces = _split_filters(inner)
    path_text = pieces[0].strip()
    if not path_text:
        raise InputError(field, "an empty placeholder {{ }}")
    path = _path(path_text, field)
    filters = tuple(_filter(p, field) for p in pieces[1:])
    return Placeholder(path, filters)


def _split_filters(inner: str) -> list[str]:
    """`a | default:"x|y" | upper` split on the bars outside quotes."""
    pieces: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in inner:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "|" and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return pieces


def _path(text: str, field: str) -> tuple[str, ...]:
    if text in FIELD_PATHS:
        return (text,)
    found = _PATH.match(text)
    if found is None or any(not p for p in found.group(2).split(".")):
        raise InputError(
            field,
            f"unknown value {text!r}: use one of {', '.join(FIELD_PATHS)}, labels.<name> or "
            "details.<name>",
        )
    if found.group(1) == "labels":
        return ("labels", found.group(2))
    return ("details", *found.group(2).split("."))


def _filter(text: str, field: str) -> Filter:
    found = _FILTER.match(text)
    if found is None or found.group(1) not in FILTERS:
        raise InputError(
            field, f"unknown filter {text.strip()!r}: use {', '.join(FILTERS)} (truncate:N)"
        )
    name, quoted, number = found.group(1), found.group(2), found.group(3)
    if name == "default":
        if quoted is None:
            raise InputError(field, 'default takes a quoted text: default:"unknown"')
        return Filter(name, text=quoted.replace('\\"', '"').replace("\\\\", "\\"))
    if name == "truncate":
        if number is None or not 1 <= int(number) <= TRUNCATE_MAX:
            raise InputError(field, f"truncate takes a length from 1 to {TRUNCATE_MAX}")
        return Filter(name, number=int(number))
    if quoted is not None or number is not None:
        raise InputError(field, f"{name} takes no argument")
    return Filter(name)


def parse_shaping(body: object, field: str = "templates") -> Shaping | None:
    """A rule's `templates` object: {"summary": "…", …, "custom_details": {"name": "…"},
    "links": [{"href": "…", "text": "…"}]}. None or {} sets nothing."""
    if body is None or body == {}:
        return None
    if not isinstance(body, dict):
        raise InputError(field, "must be an object of templates")
    fields: dict[str, Template] = {}
    details: dict[str, Template] = {}
    links: list[tuple[Template, Template | None]] = []
    for name, value in body.items():
        path = f"{field}.{name}"
        if name in TEXT_FIELDS:
            fields[name] = parse_template(value, path)
        elif name == "custom_details":
            details = _details(value, path)
        elif name == "links":
            links = _links(value, path)
        else:
            raise InputError(
                path, f"unknown template: use {', '.join(TEXT_FIELDS)}, custom_details or links"
            )
    return Shaping(fields, details, tuple(links))


def _details(value: object, path: str) -> dict[str, Template]:
    if not isinstance(value, dict):
        raise InputError(path, "must be an object of name: template")
    if len(value) > DETAILS_MAX:
        raise InputError(path, f"at most {DETAILS_MAX} custom details")
    out = {}
    for name, source in value.items():
        if not name or len(name) > DETAIL_NAME_MAX_LENGTH:
            raise InputError(path, f"names of 1 to {DETAIL_NAME_MAX_LENGTH} characters")
        check_text(name, path)
        out[name] = parse_template(source, f"{path}.{name}")
    return out


def _links(value: object, path: str) -> list[tuple[Template, Template | None]]:
    if not isinstance(value, list):
        raise InputError(path, 'must be a list of {"href", "text"}')
    if len(value) > LINKS_MAX:
        raise InputError(path, f"at most {LINKS_MAX} links")
    out = []
    for index, link in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(link, dict) or "href" not in link or set(link) - {"href", "text"}:
            raise InputError(where, 'must be {"href": template, "text": template}')
        text = link.get("text")
        out.append(
            (
                parse_template(link["href"], f"{where}.href"),
                None if text is None else parse_template(text, f"{where}.text"),
            )
        )
    return out


def shaping_json(shaping: Shaping | None) -> dict[str, Any]:
    """As stored and shown: the templates' source texts."""
    if shaping is None:
        return {}
    out: dict[str, Any] = {name: t.source for name, t in shaping.fields.items()}
    if shaping.details:
        out["custom_details"] = {name: t.source for name, t in shaping.details.items()}
    if shaping.links:
        out["links"] = [
            {"href": href.source, **({"text": text.source} if text is not None else {})}
            for href, text in shaping.links
        ]
    return out


def _lookup(alert: Alert, path: tuple[str, ...]) -> str | None:
    head = path[0]
    if head == "labels":
        return alert.labels.get(path[1])
    if head == "details":
        value: Any = alert.details
        for key in path[1:]:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)[:RENDERED_MAX_LENGTH]
    value = getattr(alert, _ATTRIBUTES.get(head, head), None)
    return value if isinstance(value, str) else None


def render(template: Template, alert: Alert) -> str:
    out: list[str] = []
    size = 0
    for part in template.parts:
        if isinstance(part, str):
            text = part
        else:
            text = _lookup(alert, part.path) or ""
            for f in part.filters:
                if f.name == "default":
                    if not text:
                        text = f.text or ""
                elif f.name == "upper":
                    text = text.upper()
                elif f.name == "lower":
                    text = text.lower()
                elif f.name == "trim":
                    text = text.strip()
                elif f.number is not None and len(text) > f.number:
                    text = text[: f.number]
        out.append(text)
        size += len(text)
        if size >= RENDERED_MAX_LENGTH:
            break
    return "".join(out)[:RENDERED_MAX_LENGTH]


def shape(alert: Alert, shaping: Shaping) -> Alert:
    """The alert as the rule's templates make it; an empty result keeps the alert's value."""
    changes: dict[str, Any] = {}
    for name, template in shaping.fields.items():
        value = render(template, alert).strip()
        if value:
            changes[_ATTRIBUTES.get(name, name)] = value
    if shaping.details:
        details = dict(alert.details)
        for name, template in shaping.details.items():
            details[name] = render(template, alert)
        changes["details"] = details
    if shaping.links:
        links = list(alert.links)
        for href, text in shaping.links:
            url = render(href, alert).strip()
            if url:
                links.append(Link(url, render(text, alert) if text is not None else None))
        changes["links"] = tuple(links)
    return replace(alert, **changes) if changes else alert
