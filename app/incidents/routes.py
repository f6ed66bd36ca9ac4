"""`POST` and `GET /v1/alerts/{dedup_key}/notes`, with the tenant's ingest key: notes on the
alert's PagerDuty incident, added by the vendor's product or in PagerDuty.

The routes are built around the REST access the app hands in (app/incidents/access.py). The
dedup key is the sender's, as in the alert's events (a key longer than 255 characters is found
by its hash, as ingest sends it), URL-encoded; a key holding `/` cannot be named in a path."""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from app.alerts import notes as alert_notes
from app.alerts.notes import AlertNote
from app.errors import InputError, key_name
from app.incidents import notes
from app.incidents.access import RestAccess
from app.pagerduty.errors import RetryLater
from app.tenants.auth import request_tenant
from app.web.api import get_deps, read_json_object
from app.web.routing import api

# A note of NOTE_MAX_LENGTH characters, each up to 4 bytes of UTF-8 or 6 as a JSON escape.
BODY_MAX_BYTES = 6 * notes.NOTE_MAX_LENGTH + 1024
PATH = "/v1/alerts/{dedup_key}/notes"


def note_json(note: AlertNote) -> dict[str, Any]:
    return {
        "id": str(note.id),
        "alert": str(note.alert_id),
        "incident_id": note.incident_id,
        "pagerduty_note_id": note.pd_note_id,
        "content": note.content,
        "author": note.author,
        "origin": note.origin,
        "created_at": note.created_at.isoformat(),
    }


def _dedup_key(request: Request) -> str:
    key: str = request.path_params["dedup_key"]
    if not key or "\x00" in key:
        raise InputError("dedup_key", "must be a non-empty dedup key without NUL", status=400)
    return key


def _unavailable(exc: RetryLater) -> Response:
    response = JSONResponse(
        {"error": {"message": f"PagerDuty could not take the note now: {exc}"}},
        status_code=503,
    )
    response.headers["Retry-After"] = str(
        math.ceil(exc.retry_after) if exc.retry_after is not None else 30
    )
    return response


def routes(access: RestAccess) -> list[BaseRoute]:
    async def add_note(request: Request) -> Response:
        tenant_id = await request_tenant(request)
        key = _dedup_key(request)
        body = await read_json_object(request)
        # Named so that any answer can carry them (an empty key, an unpaired surrogate).
        extra = sorted(key_name(k) for k in body if k != "content")
        if extra:
            raise InputError(extra[0], 'unknown field; a note is {"content": …}', status=400)
        content = notes.note_content(body.get("content"))
        try:
            note = await notes.add_note(
                get_deps(request), access, tenant_id=tenant_id, dedup_key=key, content=content
            )
        except RetryLater as exc:
            return _unavailable(exc)
        return JSONResponse(note_json(note), status_code=201)

    async def list_notes(request: Request) -> Response:
        tenant_id = await request_tenant(request)
        deps = get_deps(request)
        alert_id = await notes.alert_of(deps, tenant_id, _dedup_key(request))
        found = await alert_notes.notes_of(deps.db, tenant_id, alert_id)
        return JSONResponse({"alert": str(alert_id), "notes": [note_json(n) for n in found]})

    return [
        api(PATH, add_note, methods=["POST"], max_body=BODY_MAX_BYTES),
        api(PATH, list_notes, methods=["GET"]),
    ]
