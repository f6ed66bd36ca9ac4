"""Notes on an alert's PagerDuty incident in the OpenAPI document."""

from __future__ import annotations

from app.incidents.notes import NOTE_MAX_LENGTH
from app.incidents.routes import BODY_MAX_BYTES
from app.web.apidoc import (
    INGEST_KEY,
    TIMESTAMP,
    UUID,
    Json,
    answer,
    byte_size,
    json_body,
    nullable,
    obj,
    operation,
    ref,
    response,
    schema,
    text,
)

# Beside the delivery API: what became of an alert, and what people said about it.
TAG = "Delivery"

NOTE: Json = obj(
    {
        "id": UUID,
        "alert": {**UUID, "description": "The alert's life the note belongs to."},
        "incident_id": text("The PagerDuty incident it is on."),
        "pagerduty_note_id": text(),
        "content": text(),
        "author": nullable(text("The PagerDuty user (or service) it is by.")),
        "origin": {
            "enum": ["api", "pagerduty"],
            "description": "`api`: added through this API; `pagerduty`: added in PagerDuty "
            "and brought by its `incident.annotated` webhook.",
        },
        "created_at": TIMESTAMP,
    },
    required=(
        *("id", "alert", "incident_id", "pagerduty_note_id", "content", "author", "origin"),
        "created_at",
    ),
)

NOTE_LIST: Json = obj(
    {"alert": UUID, "notes": {"type": "array", "items": schema("AlertNote")}},
    required=("alert", "notes"),
)

NEW_NOTE: Json = obj(
    {"content": text("The note's text.", min_length=1, max_length=NOTE_MAX_LENGTH)},
    required=("content",),
    closed=True,
)

DEDUP_KEY: Json = {
    "name": "dedup_key",
    "in": "path",
    "required": True,
    "description": "The alert's dedup key as its sender gave it (URL-encoded). The newest "
    "alert of the key is meant, open or resolved.",
    "schema": {"type": "string", "minLength": 1},
}

UNAVAILABLE_NOTE: Json = answer(
    "The database, or PagerDuty, cannot take the request now; nothing was added, and the "
    "same request may be sent again after `Retry-After`.",
    schema("Error"),
    **{"Retry-After": ref("headers", "Retry-After")},
)

SCHEMAS: Json = {"AlertNote": NOTE, "AlertNoteList": NOTE_LIST, "NewAlertNote": NEW_NOTE}

PATHS: Json = {
    "/v1/alerts/{dedup_key}/notes": {
        "post": operation(
            operation_id="addAlertNote",
            summary="Add a note to the alert's PagerDuty incident",
            description=(
                "The note is added to the incident through the tenant's OAuth connection "
                "(PagerDuty's `createIncidentNote`), in the name of the PagerDuty user who "
                "connected the account. It needs an incident pdconnect knows (its webhooks "
                "or reconciliation named it) and a connection with REST access: without "
                "either the answer is 409 saying which. The body is at most "
                f"{byte_size(BODY_MAX_BYTES)}."
            ),
            tag=TAG,
            security=INGEST_KEY,
            parameters=[DEDUP_KEY],
            request_body=json_body(schema("NewAlertNote")),
            responses={
                "201": answer("The note, as PagerDuty took it.", schema("AlertNote")),
                "400": response("BadRequest"),
                "401": response("Unauthorized"),
                "404": response("NotFound"),
                "409": response("Conflict"),
                "413": response("TooLarge"),
                "429": response("RateLimited"),
                "503": UNAVAILABLE_NOTE,
            },
        ),
        "get": operation(
            operation_id="listAlertNotes",
            summary="The notes on the alert's PagerDuty incidents, oldest first",
            tag=TAG,
            security=INGEST_KEY,
            parameters=[DEDUP_KEY],
            responses={
                "200": answer("The alert and its notes.", schema("AlertNoteList")),
                "400": response("BadRequest"),
                "401": response("Unauthorized"),
                "404": response("NotFound"),
                "429": response("RateLimited"),
                "503": response("Unavailable"),
            },
        ),
    }
}
