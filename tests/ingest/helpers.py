"""Shared by the ingest tests: the captured samples and a mapping with fixed defaults."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from app.ingest.alert import Alert
from app.ingest.mapping import OutboundEvent, to_outbound
from app.ingest.severity import SeverityMap

SAMPLES = Path(__file__).parent / "samples"
NEW_KEY = "generated-key"


def sample(name: str) -> dict[str, Any]:
    value = json.loads((SAMPLES / name).read_text())
    assert isinstance(value, dict)
    return value


def outbound(
    alert: Alert, api: str = "v2", severity_map: SeverityMap | None = None
) -> OutboundEvent:
    assert api in ("v2", "v1")
    return to_outbound(
        alert,
        api="v2" if api == "v2" else "v1",
        severity_map=severity_map or SeverityMap(),
        new_dedup_key=lambda: NEW_KEY,
    )


DELETE: Any = object()


def with_value(body: Any, path: str, value: Any) -> Any:
    """A deep copy of `body` with the value at a JSON path (`alerts[0].labels.x`) replaced,
    or removed when `value` is DELETE."""
    out = copy.deepcopy(body)
    parts: list[str | int] = [
        int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", path)
    ]
    target = out
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return out
