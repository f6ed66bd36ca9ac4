"""Notes on an alert's PagerDuty incident, added by the vendor's product through our API.

The note goes to the incident through the OAuth connection's REST API (`createIncidentNote`),
whose `From` header must name a user of the account. pdconnect uses the PagerDuty user who
connected the account: the token acts as that user already (PagerDuty records the note as
theirs either way), so naming anyone else would claim an authorship the token does not have.
Their email is learned from `GET /users/me` with the token, once, and kept per user id, so a
reconnect by someone else is noticed and learned again.

A note needs an incident pdconnect knows (a webhook or reconciliation told its id) and a REST
token; without either the caller gets a 409 saying which."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from uuid import UUID

from app.alerts import incidents, notes
from app.alerts.notes import AlertNote
from app.deps import Deps
from app.errors import ConflictError, InputError, NotFoundError
from app.incidents import store
from app.incidents.access import RestAccess
from app.incidents.store import ActingUser, Target
from app.pagerduty.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from app.pagerduty.incidents import IncidentsClient

# PagerDuty's REST document sets no length for a note; its web app takes up to 25 000
# characters. A longer one is refused here, before PagerDuty is asked.
NOTE_MAX_LENGTH = 25_000
# As ingest sends keys to PagerDuty (app/ingest/mapping.py, `wire_dedup_key`): a longer key
# is its SHA-256, and the alert is kept under that.
DEDUP_KEY_MAX_LENGTH = 255


def wire_dedup_key(key: str) -> str:
    if len(key) <= DEDUP_KEY_MAX_LENGTH:
        return key
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def note_content(value: object) -> str:
    if not isinstance(value, str):
        raise InputError("content", "is required and must be a string", status=400)
    if "\x00" in value:
        raise InputError("content", "must not contain a NUL character", status=400)
    if not value.strip():
        raise InputError("content", "must not be empty", status=400)
    if len(value) > NOTE_MAX_LENGTH:
        raise InputError(
            "content",
            f"must be at most {NOTE_MAX_LENGTH} characters (PagerDuty's limit)",
            status=400,
        )
    return value


@dataclass(frozen=True)
class AlertIncident:
    alert_id: UUID
    target: Target
    incident_id: str


async def alert_of(deps: Deps, tenant_id: UUID, dedup_key: str) -> UUID:
    alert_id = await notes.latest_alert(deps.db, tenant_id, wire_dedup_key(dedup_key))
    if alert_id is None:
        raise NotFoundError("alert")
    return alert_id


async def incident_of(deps: Deps, tenant_id: UUID, dedup_key: str) -> AlertIncident:
    """The alert's incident in PagerDuty, through a service with REST access; the newest
    state wins when the alert went to several."""
    key = wire_dedup_key(dedup_key)
    alert_id = await alert_of(deps, tenant_id, dedup_key)
    service_ids = await store.alert_services(deps.db, tenant_id, alert_id)
    reachable = await store.targets(deps.db, service_ids)
    if not reachable:
        raise ConflictError(
            "dedup_key",
            "the alert went to no PagerDuty service connected by OAuth (a pasted integration "
            "key or Simple Install gives pdconnect no REST access to add notes with); connect "
            "the account with Connect PagerDuty to add notes",
        )
    states = await incidents.states_of(deps.db, tuple(reachable), key)
    if not states:
        raise ConflictError(
            "dedup_key",
            "PagerDuty has not told pdconnect the alert's incident yet (no webhook nor "
            "reconciliation has named it); try again shortly",
        )
    state = max(states.values(), key=lambda s: s.changed_at)
    return AlertIncident(alert_id, reachable[state.service_id], state.incident_id)


async def acting_user(deps: Deps, installation_id: UUID, client: IncidentsClient) -> ActingUser:
    known = await store.acting_user(deps.db, installation_id)
    if known is not None:
        return known
    me = await client.current_user()
    user = ActingUser(pd_user_id=me.id, name=me.name, email=me.email)
    await store.keep_acting_user(deps.db, installation_id, user)
    return user


async def add_note(
    deps: Deps, access: RestAccess, *, tenant_id: UUID, dedup_key: str, content: str
) -> AlertNote:
    found = await incident_of(deps, tenant_id, dedup_key)
    target = found.target
    try:
        client = await access(deps, tenant_id, target.installation_id)
        user = await acting_user(deps, target.installation_id, client)
        note = await client.create_note(found.incident_id, content=content, from_email=user.email)
    except Unauthorized as exc:
        raise ConflictError(
            "dedup_key", f"the PagerDuty connection needs to be reconnected ({exc})"
        ) from exc
    except Forbidden as exc:
        raise ConflictError(
            "dedup_key", f"PagerDuty does not let this connection add notes ({exc})"
        ) from exc
    except NotFound as exc:
        raise ConflictError(
            "dedup_key", f"PagerDuty no longer has the alert's incident ({exc})"
        ) from exc
    except InvalidRequest as exc:
        raise InputError("content", str(exc), status=400) from exc
    await notes.add_note(
        deps.db,
        tenant_id=tenant_id,
        alert_id=found.alert_id,
        service_id=target.service_id,
        incident_id=found.incident_id,
        pd_note_id=note.id,
        content=note.content,
        author=note.author or user.name,
        origin="api",
        created_at=note.created_at,
    )
    listed = await notes.notes_of(deps.db, tenant_id, found.alert_id)
    return next(n for n in listed if n.pd_note_id == note.id and n.incident_id == found.incident_id)
