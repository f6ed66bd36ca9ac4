"""The operator's admin API for secrets at rest: `/admin/v1/encryption…`, behind ADMIN_TOKEN.

`GET` says how many stored secrets each key of ENCRYPTION_KEYS protects; `POST …/reencrypt`
moves up to `limit` of them to the first key and says what is left, to be called again until
`done`. Only counts are ever answered.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.encryption.reencrypt import Report, reencrypt, status
from app.errors import InputError
from app.web.api import read_json_object, require_admin
from app.web.routing import api

# What one call may rewrite: each is a decrypt, an encrypt and an UPDATE, and the call must end
# well within a request's time.
LIMIT_DEFAULT = 1000
LIMIT_MAX = 10_000


def report_json(report: Report, keys: int) -> dict[str, Any]:
    return {
        "encryption_keys": keys,
        "reencrypted": report.reencrypted,
        "left": report.left,
        "left_by_key": {str(k): n for k, n in report.left_by_key.items()},
        "unreadable": report.unreadable,
        "done": report.done,
        "secrets": [
            {
                "secret": column.name,
                "by_key": {str(k): n for k, n in sorted(column.by_key.items())},
                "reencrypted": column.reencrypted,
                "changed_meanwhile": column.changed_meanwhile,
                "left": column.left,
                "unreadable": column.unreadable,
            }
            for column in report.columns
        ],
    }


async def get_status(request: Request) -> Response:
    deps = require_admin(request)
    report = await status(deps.db, deps.vault)
    return JSONResponse(report_json(report, len(deps.config.encryption_keys)))


async def post_reencrypt(request: Request) -> Response:
    deps = require_admin(request)
    body = await read_json_object(request)
    limit = body.get("limit", LIMIT_DEFAULT)
    # bool is an int to Python, never to the caller.
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise InputError("limit", "must be a whole number")
    if not 1 <= limit <= LIMIT_MAX:
        raise InputError("limit", f"must be between 1 and {LIMIT_MAX}")
    report = await reencrypt(deps.db, deps.vault, limit=limit)
    return JSONResponse(report_json(report, len(deps.config.encryption_keys)))


routes = [
    api("/admin/v1/encryption", get_status, methods=["GET"]),
    api("/admin/v1/encryption/reencrypt", post_reencrypt, methods=["POST"]),
]
