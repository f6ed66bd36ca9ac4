"""Secrets at rest under older ENCRYPTION_KEYS, and their re-encryption, in the OpenAPI
document."""

from __future__ import annotations

from app.encryption.routes import LIMIT_DEFAULT, LIMIT_MAX
from app.web.apidoc import Json, json_body, obj, schema, text
from app.web.apidoc_admin import admin_operation, ok

_COUNT: Json = {"type": "integer", "minimum": 0}
_BY_KEY: Json = {
    "type": "object",
    "description": "Stored secrets per key, by its position in ENCRYPTION_KEYS (1 encrypts).",
    "propertyNames": {"pattern": "^[1-9][0-9]*$"},
    "additionalProperties": _COUNT,
}
_SECRET_FIELDS: Json = {
    "secret": text("Where the secrets are stored: table.column."),
    "by_key": _BY_KEY,
    "reencrypted": _COUNT,
    "changed_meanwhile": {
        **_COUNT,
        "description": "Rewritten by pdconnect itself between this call's read and its write; "
        "that newer value was kept.",
    },
    "left": _COUNT,
    "unreadable": _COUNT,
}
_REPORT_FIELDS: Json = {
    "encryption_keys": {**_COUNT, "description": "How many keys ENCRYPTION_KEYS holds."},
    "reencrypted": {**_COUNT, "description": "Secrets this call moved to the first key."},
    "left": {**_COUNT, "description": "Secrets still under an older key."},
    "left_by_key": {
        **_BY_KEY,
        "description": "Secrets each older key still protects; a key at 0 (or absent) can be "
        "removed from ENCRYPTION_KEYS.",
    },
    "unreadable": {
        **_COUNT,
        "description": "Secrets no key opens: a key was removed too early. The log names "
        "each one's row.",
    },
    "done": {
        "type": "boolean",
        "description": "Every stored secret opens with the first key alone.",
    },
    "secrets": {"type": "array", "items": schema("EncryptedSecrets")},
}

SCHEMAS: Json = {
    "EncryptedSecrets": obj(_SECRET_FIELDS, required=tuple(_SECRET_FIELDS)),
    "EncryptionReport": obj(_REPORT_FIELDS, required=tuple(_REPORT_FIELDS)),
    "Reencrypt": obj(
        {
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": LIMIT_MAX,
                "default": LIMIT_DEFAULT,
                "description": "At most this many secrets are rewritten by this call.",
            }
        }
    ),
}

PATHS: Json = {
    "/admin/v1/encryption": {
        "get": admin_operation(
            "getEncryptionStatus",
            "How many stored secrets each encryption key protects",
            ok("Counts only; nothing is changed.", "EncryptionReport"),
        )
    },
    "/admin/v1/encryption/reencrypt": {
        "post": admin_operation(
            "reencryptSecrets",
            "Re-encrypt stored secrets under the first key of ENCRYPTION_KEYS",
            ok("What this call did and what is left.", "EncryptionReport"),
            body=json_body(
                schema("Reencrypt"), required=False, examples={"a_batch": {"limit": 500}}
            ),
            extra=("400", "413", "422"),
            description="Call again until `done`; then the keys after the first can be removed "
            "from ENCRYPTION_KEYS. Safe while serving and when interrupted: each secret is "
            "rewritten only if unchanged since it was read, and one already under the first key "
            "is left alone. `pdconnect keys reencrypt` does the same from the command line.",
        )
    },
}
