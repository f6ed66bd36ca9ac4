"""The sender against real receivers on loopback: signatures a Standard Webhooks verifier
accepts, retries that lose nothing and keep each key's order, 4xx refused at once, a tenant's
own receiver and secret rotation, several senders sharing the table, and one tenant's failing
receiver costing another nothing."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from databases import Database
from standardwebhooks import webhooks
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.callbacks import store
from app.callbacks.emit import connection_changed, emit_test_callback
from tests.callbacks.conftest import Arrival, Receiver, body_of, until
from tests.callbacks.support import (
    VAULT,
    key_of,
    new_tenant,
    new_whsec,
    own_receiver,
    quick,
    record,
    sending,
    statuses,
    use_global,
)

Start = Callable[[], Awaitable[Receiver]]


async def test_a_callback_arrives_signed_and_a_standard_webhooks_verifier_accepts_it(
    committed: Database, receivers: Start
) -> None:
    receiver = await receivers()
    secret = new_whsec()
    tenant_id = await new_tenant(committed)
    await use_global(committed)
    callback_id = await record(committed, tenant_id, "disk-db1", 1)

    async with sending(committed, quick(url=receiver.url, secrets=(key(secret),))):
        await until(lambda: _any(receiver))

    (arrival,) = receiver.arrivals
    verified = Webhook(secret).verify(arrival.body, arrival.headers)
    assert verified["type"] == "callback.test"
    assert verified["data"] == {"n": 1}
    assert arrival.headers["webhook-id"] == str(callback_id)
    assert arrival.headers["content-type"] == "application/json"
    assert (await statuses(committed))[callback_id] == ("delivered", 1, 200)


async def test_a_tampered_or_replayed_callback_fails_verification(
    committed: Database, receivers: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await receivers()
    secret = new_whsec()
    tenant_id = await new_tenant(committed)
    await use_global(committed)
    await record(committed, tenant_id, "disk-db1", 1)
    async with sending(committed, quick(url=receiver.url, secrets=(key(secret),))):
        await until(lambda: _any(receiver))
    (arrival,) = receiver.arrivals
    verifier = Webhook(secret)

    tampered = arrival.body.replace(b'"n":1', b'"n":2')
    assert tampered != arrival.body
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verifier.verify(tampered, arrival.headers)
    # A replay with a fresh timestamp no longer matches its signature...
    refreshed = {**arrival.headers, "webhook-timestamp": str(int(arrival_time(arrival)) + 60)}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verifier.verify(arrival.body, refreshed)
    # ...and one as it was captured is refused once it is older than the tolerance (5 min).
    monkeypatch.setattr(webhooks, "datetime", _Later)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(arrival.body, arrival.headers)


async def test_a_failing_receiver_loses_nothing_and_each_key_keeps_its_order(
    committed: Database, receivers: Start
) -> None:
    receiver = await receivers()
    failing = True
    receiver.status = lambda _: 500 if failing else 200
    tenant_id = await new_tenant(committed)
    await use_global(committed)
    for n in range(4):
        await record(committed, tenant_id, "alert-a", n)
        await record(committed, tenant_id, "alert-b", n)

    async with sending(committed, quick(url=receiver.url, secrets=(key(new_whsec()),))):
        await until(lambda: _count(receiver, 6))
        failing = False
        await until(lambda: _delivered(receiver, 8))

    assert all(a.status == 500 for a in receiver.arrivals[:6])
    done = [body_of(a) for a in receiver.delivered()]
    ids = [a.headers["webhook-id"] for a in receiver.delivered()]
    assert len(set(ids)) == len(ids) == 8, "each delivered once"
    order: dict[str, list[int]] = {"a": [], "b": []}
    rows = await committed.fetch_all("SELECT id, order_key FROM callbacks ORDER BY seq")
    key_of_id = {str(r._mapping["id"]): r._mapping["order_key"] for r in rows}
    for arrival, body in zip(receiver.delivered(), done, strict=True):
        order[key_of_id[arrival.headers["webhook-id"]][-1]].append(body["data"]["n"])
    assert order == {"a": [0, 1, 2, 3], "b": [0, 1, 2, 3]}
    # While alert-a's first callback failed, its next ones were never tried.
    tried = {a.headers["webhook-id"] for a in receiver.arrivals if a.status == 500}
    assert {key_of_id[i] for i in tried} <= {"alert-a", "alert-b"}
    heads = {str(r._mapping["id"]) for r in rows[:2]}
    assert tried == heads
    states = await statuses(committed)
    assert {s for s, _, _ in states.values()} == {"delivered"}
    attempts = await committed.fetch_val("SELECT count(*) FROM callback_attempts")
    assert attempts == len(receiver.arrivals)


async def test_a_4xx_fails_at_once_and_the_next_callback_goes_on(
    committed: Database, receivers: Start
) -> None:
    receiver = await receivers()
    receiver.status = lambda arrival: 410 if body_of(arrival)["data"]["n"] == 0 else 204
    tenant_id = await new_tenant(committed)
    await use_global(committed)
    first = await record(committed, tenant_id, "alert-a", 0)
    second = await record(committed, tenant_id, "alert-a", 1)

    async with sending(committed, quick(url=receiver.url, secrets=(key(new_whsec()),))):
        await until(lambda: _delivered(receiver, 1))

    states = await statuses(committed)
    assert states[first] == ("failed", 1, 410)
    assert states[second] == ("delivered", 1, 204)
    error = await committed.fetch_val(
        "SELECT last_error FROM callbacks WHERE id = :id", {"id": first}
    )
    assert error.startswith("HTTP 410: answer")
    assert "not retried" in error


@pytest.mark.parametrize("status", [408, 429, 503, 302])
async def test_timeouts_rate_limits_server_errors_and_redirects_are_retried(
    committed: Database, receivers: Start, status: int
) -> None:
    receiver = await receivers()
    receiver.status = lambda _: status if len(receiver.arrivals) == 0 else 200
    receiver.headers = {"Retry-After": "1", "Location": "http://127.0.0.1:9/elsewhere"}
    tenant_id = await new_tenant(committed)
    await use_global(committed)
    callback_id = await record(committed, tenant_id, "alert-a", 0)
    # A first retry waits at most the base (0.05 s); Retry-After is honoured up to the cap.
    config = quick(url=receiver.url, secrets=(key(new_whsec()),), retry_cap=timedelta(seconds=2))

    async with sending(committed, config):
        await until(lambda: _delivered(receiver, 1))

    assert [a.status for a in receiver.arrivals] == [status, 200]
    assert (await statuses(committed))[callback_id] == ("delivered", 2, 200)
    if status == 429:
        # Retry-After: 1 was honoured, beyond the backoff's 0.3 s ceiling.
        first, second = await _attempt_times(committed, callback_id)
        assert second - first >= timedelta(seconds=1)


async def test_retries_stop_after_the_retry_period_and_the_callback_fails(
    committed: Database, receivers: Start
) -> None:
    receiver = await receivers()
    receiver.status = 502
    tenant_id = await new_tenant(committed)
    await use_global(committed)
    callback_id = await record(committed, tenant_id, "alert-a", 0)
    config = quick(url=receiver.url, secrets=(key(new_whsec()),), retry_for=timedelta(seconds=1))

    async def failed() -> bool:
        return (await statuses(committed))[callback_id][0] == "failed"

    async with sending(committed, config):
        await until(failed)

    error = await committed.fetch_val(
        "SELECT last_error FROM callbacks WHERE id = :id", {"id": callback_id}
    )
    assert error.startswith("gave up after 0.000277778 hours of retries; last: HTTP 502")
    assert len(receiver.arrivals) >= 2


async def test_a_tenant_receiver_of_its_own_gets_its_callbacks_signed_with_its_secret(
    committed: Database, receivers: Start
) -> None:
    shared, own = await receivers(), await receivers()
    shared_secret, own_secret = new_whsec(), new_whsec()
    ours, theirs = await new_tenant(committed, "Ours"), await new_tenant(committed, "Theirs")
    await use_global(committed)
    await own_receiver(committed, theirs, own.url, own_secret)
    await record(committed, ours, "k", 1)
    await record(committed, theirs, "k", 2)

    async with sending(committed, quick(url=shared.url, secrets=(key(shared_secret),))):
        await until(lambda: _delivered(shared, 1))
        await until(lambda: _delivered(own, 1))

    assert Webhook(shared_secret).verify(shared.arrivals[0].body, shared.arrivals[0].headers)[
        "data"
    ] == {"n": 1}
    assert Webhook(own_secret).verify(own.arrivals[0].body, own.arrivals[0].headers)["data"] == {
        "n": 2
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(shared_secret).verify(own.arrivals[0].body, own.arrivals[0].headers)


async def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(
    committed: Database, receivers: Start
) -> None:
    receiver = await receivers()
    old, new = new_whsec(), new_whsec()
    tenant_id = await new_tenant(committed)
    await own_receiver(committed, tenant_id, receiver.url, old)
    await store.rotate_secret(
        committed, tenant_id, secret_enc=VAULT.encrypt(new), overlap=timedelta(hours=24)
    )
    await record(committed, tenant_id, "k", 1)
    async with sending(committed, quick()):
        await until(lambda: _delivered(receiver, 1))
    await committed.execute(
        "UPDATE tenant_callbacks SET previous_secret_until = now() - interval '1 second'"
    )
    await record(committed, tenant_id, "k", 2)
    async with sending(committed, quick()):
        await until(lambda: _delivered(receiver, 2))

    during, after = receiver.arrivals
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(during.body, during.headers)["data"] == {"n": 1}
    assert Webhook(new).verify(during.body, during.headers)["data"] == {"n": 1}
    assert Webhook(new).verify(after.body, after.headers)["data"] == {"n": 2}
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


async def test_several_senders_never_send_one_callback_twice(
    committed: Database, receivers: Start, database_url: str
) -> None:
    receiver = await receivers()
    receiver.delay = 0.2
    tenant_id = await new_tenant(committed)
    await use_global(committed)
    for n in range(24):
        await record(committed, tenant_id, f"alert-{n % 6}", n)
    config = quick(url=receiver.url, secrets=(key(new_whsec()),), per_host=8)

    other = Database(database_url, min_size=1, max_size=4)
    await other.connect()
    try:
        async with sending(committed, config), sending(other, config):
            await until(lambda: _delivered(receiver, 24))
    finally:
        await other.disconnect()

    ids = [a.headers["webhook-id"] for a in receiver.arrivals]
    assert len(ids) == len(set(ids)) == 24
    assert receiver.most_busy > 1, "the two senders did send at once"


async def test_a_receiver_that_hangs_costs_other_tenants_nothing(
    committed: Database, receivers: Start
) -> None:
    hanging, healthy = await receivers(), await receivers()
    hanging.delay = 5.0
    slow, fine = await new_tenant(committed, "Slow"), await new_tenant(committed, "Fine")
    await own_receiver(committed, slow, hanging.url, new_whsec())
    await own_receiver(committed, fine, healthy.url, new_whsec())
    for n in range(10):
        await record(committed, slow, f"alert-{n}", n)
    config = quick(timeout=timedelta(seconds=3), per_host=2, concurrency=4)

    async with sending(committed, config):
        await until(lambda: _busy(hanging, 2))
        await record(committed, fine, "alert-0", 0)
        await until(lambda: _delivered(healthy, 1), within=2.5)
        assert hanging.most_busy == 2, "at most per_host sends to one receiver"
        assert hanging.arrivals == [], "the healthy tenant did not wait for a hanging send"


async def test_nothing_is_recorded_for_a_tenant_without_a_receiver(committed: Database) -> None:
    tenant_id = await new_tenant(committed)
    await store.publish_defaults(committed, url_set=False)
    assert await emit_test_callback(committed, tenant_id) is None
    assert await statuses(committed) == {}


async def test_connection_callbacks_say_changes_not_repeats(committed: Database) -> None:
    tenant_id = await new_tenant(committed)
    await use_global(committed)
    installation_id = await committed.fetch_val(
        """
        INSERT INTO installations (tenant_id, method, account_key, subdomain, region, events_url)
        VALUES (:t, 'oauth', 'acct', 'acme', 'us', 'http://127.0.0.1:9/events') RETURNING id
        """,
        {"t": tenant_id},
    )
    await connection_changed(committed, "connection.restored", installation_id, "reconnected")
    for _ in range(2):
        await connection_changed(committed, "connection.needs_reconnect", installation_id, "401")
    await connection_changed(committed, "connection.restored", installation_id, "reconnected")
    await connection_changed(committed, "connection.restored", installation_id, "reconnected")

    rows = await committed.fetch_all("SELECT type, order_key, body FROM callbacks ORDER BY seq")
    assert [r._mapping["type"] for r in rows] == [
        "connection.needs_reconnect",
        "connection.restored",
    ]
    assert {r._mapping["order_key"] for r in rows} == {f"connection:{installation_id}"}
    data = json.loads(rows[0]._mapping["body"])["data"]
    assert data["installation"]["subdomain"] == "acme"
    assert data["reason"] == "401"
    assert data["tenant"]["id"] == str(tenant_id)


# --- helpers -------------------------------------------------------------------------------


def key(secret: str) -> bytes:
    return key_of(secret)


def arrival_time(arrival: Arrival) -> float:
    return float(arrival.headers["webhook-timestamp"])


class _Later(datetime):
    """The verifier's clock, ten minutes on: a captured callback replayed then."""

    @classmethod
    def now(cls, tz: object = None) -> _Later:
        moment = datetime.now(UTC) + timedelta(minutes=10)
        return cls.fromtimestamp(moment.timestamp(), UTC)


async def _any(receiver: Receiver) -> bool:
    return bool(receiver.arrivals)


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.arrivals) >= n


async def _delivered(receiver: Receiver, n: int) -> bool:
    return len(receiver.delivered()) >= n


async def _busy(receiver: Receiver, n: int) -> bool:
    return receiver.busy >= n


async def _attempt_times(db: Database, callback_id: object) -> list[datetime]:
    rows = await db.fetch_all(
        "SELECT started_at FROM callback_attempts WHERE callback_id = :id ORDER BY id",
        {"id": callback_id},
    )
    return [r._mapping["started_at"] for r in rows]
