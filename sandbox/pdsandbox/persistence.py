"""Keeping a sandbox's state across restarts: `--state-file PATH` (or `PDSANDBOX_STATE_FILE`).

Without it the sandbox forgets everything when it stops, as it always has. With it, the state
is read from the file at start (when the file exists) and written back a moment after each
change and at shutdown, so a product that stored a routing key, a token or an incident id
finds them again after `make run` restarts the sandbox.

What is kept: the accounts and everything in them (users, escalation policies, schedules,
services, integrations, rulesets, webhook subscriptions with their secrets and disables),
OAuth codes, grants and tokens, the id_token signing key (so id_tokens issued before still
verify), incidents with their log entries and notes, and the sandbox clock's offset. What is
not: the Events API arrival log, injected faults, test switches, the webhook delivery log and
deliveries under way (their events are lost, as a receiver that was down would see them).

Writes are atomic (a temporary file in the same directory, flushed to disk, then renamed over
the old one), so a crash mid-write leaves the previous state whole. Changes are debounced:
the first one schedules a write `delay` seconds later, and those that follow before it ride
along. A write runs on the event loop (it reads the state, which only that loop changes);
when the state is large enough for writes to take long, the delay grows to nine times the
last write's duration, so that under load (benchmarks drive thousands of events a second
through the sandbox) writing never takes more than a tenth of the loop's time.

A file that cannot be read stops the start with `StateFileError`, naming the file, rather
than being overwritten with a fresh state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import types
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from pdsandbox.state import SandboxState

FORMAT = "pdsandbox-state"
VERSION = 1
DEFAULT_DELAY_SECONDS = 0.5


class StateFileError(Exception):
    """The state file cannot be read or written; the message names it."""


def dump_state(state: SandboxState) -> dict[str, Any]:
    """Everything the file keeps, as JSON-ready data."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "clock_offset": state.clock_offset,
        "tables": {
            name: [_plain(record) for record in table.values()]
            for name, table in state.tables().items()
        },
        "oauth": state.oauth.snapshot(),
        "incidents": state.incidents.snapshot(),
        "signing_key": state.keys.snapshot(),
    }


def load_state(state: SandboxState, data: dict[str, Any]) -> None:
    """Put what `dump_state` made back into a freshly seeded `state`. A table missing from the
    file (one added by a later version of the sandbox) keeps its seeded contents."""
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ValueError(f"not a {FORMAT} file of version {VERSION}")
    state.clock_offset = float(data["clock_offset"])
    tables = state.tables()
    for name, records in data["tables"].items():
        table = tables.get(name)
        if table is None:
            raise ValueError(f"unknown table {name!r}")
        kind = state.record_types()[name]
        table.clear()
        for raw in records:
            record = _record(kind, raw)
            table[record.id] = record
    state.oauth.restore(data["oauth"])
    state.incidents.restore(data["incidents"])
    state.keys.restore(data["signing_key"])


class StateFile:
    """Loads the state at start and keeps the file up to date after changes."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        state: SandboxState,
        delay: float = DEFAULT_DELAY_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.state = state
        self.delay = delay
        self.dirty = False
        self.last_write_seconds = 0.0
        self._timer: asyncio.TimerHandle | None = None
        state.change_listeners.append(self.changed)

    def load(self) -> bool:
        """Read the file into the state; False when there is none yet (a first start)."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateFileError(f"cannot read the state file {self.path}: {exc}") from exc
        try:
            load_state(self.state, json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateFileError(
                f"the state file {self.path} is not a sandbox state this version can read "
                f"({exc}); move it away to start afresh"
            ) from exc
        return True

    def changed(self) -> None:
        """Something in the state changed: write it soon (now, with no event loop running)."""
        self.dirty = True
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # changed outside the server's loop: written at the next change or shutdown
        self._timer = loop.call_later(max(self.delay, 9 * self.last_write_seconds), self._flush)

    def _flush(self) -> None:
        self._timer = None
        self.save()

    def save(self) -> None:
        """Write the state now, atomically."""
        started = time.perf_counter()
        self.dirty = False
        text = json.dumps(dump_state(self.state), ensure_ascii=False, separators=(",", ":"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StateFileError(f"cannot write the state file {self.path}: {exc}") from exc
        self.last_write_seconds = time.perf_counter() - started

    def close(self) -> None:
        """At shutdown: cancel the pending write and do it now, if anything changed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.dirty:
            self.save()


def _plain(record: Any) -> dict[str, Any]:
    plain: dict[str, Any] = dataclasses.asdict(record)
    return plain


def _record(kind: type[Any], raw: dict[str, Any]) -> Any:
    hints = get_type_hints(kind)
    values = {
        f.name: _convert(hints[f.name], raw[f.name])
        for f in dataclasses.fields(kind)
        if f.name in raw
    }
    return kind(**values)


def _convert(hint: Any, value: Any) -> Any:
    """JSON `value` back to the type `hint` names: tuples, nested records and enums."""
    if value is None:
        return None
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v) for v in value)
        return tuple(_convert(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record(hint, value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    return value
