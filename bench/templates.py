"""What a rule's templates cost per alert, in our placeholder language and in Jinja's sandbox.

    .venv/bin/python -m bench.templates [--alerts 20000]

Renders the same templates (bench/rules.py's TEMPLATES: seven fields, two custom details and a
link) against an Alertmanager-like alert, in process, and prints microseconds per alert for
each and their ratio. The placeholder language (app/ingest/templates.py) was chosen on these
figures and on its bound: it has no loops, so a template's cost is its length, where a Jinja
template can loop (`{% for i in range(99999) %}` twice nested) within the sandbox's rules.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment

from app.ingest.alert import Alert
from app.ingest.templates import parse_shaping, shape
from bench.rules import LABELS, TEMPLATES

ALERT = Alert(status="firing", dedup_key="k", summary="High error rate", labels=LABELS)


def _jinja_source(text: str) -> str:
    """The same template in Jinja's syntax: `default:"x"` becomes `default("x", true)`."""
    text = re.sub(r'\|\s*default:"([^"]*)"', r'| default("\1", true)', text)
    return text


def jinja_renderers() -> list[Template]:
    env = SandboxedEnvironment(autoescape=False)
    sources = [v for v in TEMPLATES.values() if isinstance(v, str)]
    details = TEMPLATES["custom_details"]
    links = TEMPLATES["links"]
    assert isinstance(details, dict)
    assert isinstance(links, list)
    sources += [str(v) for v in details.values()]
    sources += [str(link["href"]) for link in links]
    return [env.from_string(_jinja_source(s)) for s in sources]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.templates", description=__doc__.split("\n\n")[0])
    p.add_argument("--alerts", type=int, default=20_000)
    args = p.parse_args(argv)
    shaping = parse_shaping(TEMPLATES)
    assert shaping is not None
    started = time.perf_counter()
    for _ in range(args.alerts):
        shape(ALERT, shaping)
    ours = (time.perf_counter() - started) / args.alerts
    templates = jinja_renderers()
    context = {"labels": dict(LABELS), "summary": ALERT.summary}
    started = time.perf_counter()
    for _ in range(args.alerts):
        for template in templates:
            template.render(context)
    jinja = (time.perf_counter() - started) / args.alerts
    print(f"placeholder language: {ours * 1e6:8.1f} µs per alert")
    print(f"Jinja sandbox:        {jinja * 1e6:8.1f} µs per alert")
    print(f"Jinja / placeholders: {jinja / ours:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
