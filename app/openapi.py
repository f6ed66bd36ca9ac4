"""`GET /openapi.json`: the ingest, delivery and admin APIs as an OpenAPI 3.1 document.

Written by hand, a fragment beside each domain (its `openapi` module, on the builders of
app/web/apidoc.py), so that it says what the endpoints do rather than what a framework
guesses, and states each limit from the constant the code enforces. Only this module imports
the fragments. The tests check it route for route against the app and fuzz the running
service with it. Built once per process: it never changes while the process lives.
"""

from __future__ import annotations

import functools
import json

from starlette.requests import Request
from starlette.responses import Response

from app.analytics import openapi as analytics
from app.callbacks import openapi as callbacks
from app.dispatch import openapi as delivery
from app.encryption import openapi as encryption
from app.incidents import openapi as incident_notes
from app.ingest.openapi import drop_ins, native, rules, windows
from app.installations import openapi as services
from app.oncall import openapi as oncall
from app.ops import openapi as ops
from app.tenants import openapi as tenants
from app.web import apidoc_admin as admin
from app.web.apidoc import COMMON_SCHEMAS, HEADERS, RESPONSES, SECURITY_SCHEMES, Json
from app.web.routing import api

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"

DESCRIPTION = """\
pdconnect pages a SaaS vendor's customers (tenants) through their own PagerDuty accounts.

- **Ingest**: alert senders post with a tenant's ingest key. A 202 means every event is
  committed and will be delivered; nothing of a refused request is kept.
- **Delivery**: what became of each event, with every attempt and PagerDuty's answers.
- **Admin**: the operator's API, behind `ADMIN_TOKEN`.

Errors of our own endpoints are `{"error": {"message": …, "field": …}}`, `field` naming the
offending input as a JSON path or query parameter. PagerDuty's drop-in endpoints answer in
PagerDuty's own shapes and codes. Text anywhere must be valid Unicode without NUL characters.
"""


@functools.cache
def document() -> Json:
    parts = (
        native,
        drop_ins,
        incident_notes,
        delivery,
        oncall,
        tenants,
        services,
        rules,
        windows,
        analytics,
        encryption,
        callbacks,
        ops,
    )
    paths: Json = {path: item for part in parts for path, item in part.PATHS.items()}
    schemas: Json = {**COMMON_SCHEMAS}
    for part in parts:
        schemas.update(part.SCHEMAS)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "pdconnect", "version": API_VERSION, "description": DESCRIPTION},
        "tags": [
            {"name": native.TAG, "description": "Alerts in, by ingest key."},
            {"name": delivery.TAG, "description": "What became of each event."},
            {"name": admin.TAG, "description": "The operator's API."},
            {"name": ops.TAG, "description": "For load balancers and monitoring."},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {**RESPONSES, **tenants.RESPONSES, **drop_ins.RESPONSES},
            "headers": HEADERS,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@functools.cache
def _encoded() -> bytes:
    return json.dumps(document(), ensure_ascii=False, separators=(",", ":")).encode()


async def openapi_json(request: Request) -> Response:
    return Response(_encoded(), media_type="application/json")


routes = [api("/openapi.json", openapi_json, methods=["GET"])]
