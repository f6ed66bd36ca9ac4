"""The sandbox keeps its state across restarts with `--state-file`, and forgets it without."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from pdsandbox import create_sandbox_app, sandbox_state
from pdsandbox.persistence import StateFile, StateFileError, dump_state
from pdsandbox.server import state_file_from_env
from tests.ports import free_port
from tests.sandbox.events_flow import follow_up, send, trigger
from tests.sandbox.flow import (
    BASE_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    FakeClock,
    bearer,
    connect,
    refresh,
    sandbox_config,
)
from tests.sandbox.webhook_flow import subscribe

SANDBOX_ROOT = Path(__file__).resolve().parents[2] / "sandbox"


async def _stderr(process: asyncio.subprocess.Process) -> str:
    _, err = await process.communicate()
    return err.decode()


@asynccontextmanager
async def sandbox_process(port: int, *args: str) -> AsyncIterator[httpx2.AsyncClient]:
    """`python -m pdsandbox` on loopback, stopped with SIGTERM (as `make run` stops it)."""
    env = os.environ | {
        "SANDBOX_CLIENT_ID": CLIENT_ID,
        "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
        "SANDBOX_REDIRECT_URIS": REDIRECT_URI,
        "PYTHONPATH": os.pathsep.join([str(SANDBOX_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PDSANDBOX_STATE_FILE", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pdsandbox",
        "--port",
        str(port),
        *args,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(base_url=url, trust_env=False) as client:
            for _ in range(300):
                if process.returncode is not None:
                    raise AssertionError(await _stderr(process))
                try:
                    if (await client.get("/")).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the sandbox did not start within 15 s")
            yield client
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise


async def _new_integration(client: httpx2.AsyncClient, token: str) -> tuple[str, str, str]:
    services = await client.get("/us/api/services", headers=bearer(token))
    service_id = services.json()["services"][0]["id"]
    created = await client.post(
        f"/us/api/services/{service_id}/integrations",
        headers=bearer(token),
        json={"integration": {"type": "events_api_v2_inbound_integration", "name": "pdconnect"}},
    )
    assert created.status_code == 201, created.text
    integration = created.json()["integration"]
    return service_id, integration["id"], integration["integration_key"]


async def _incident(client: httpx2.AsyncClient, dedup_key: str) -> dict[str, Any]:
    found = (await client.get("/_sandbox/incidents", params={"incident_key": dedup_key})).json()
    (incident,) = found["incidents"]
    return dict(incident)


async def test_a_restarted_sandbox_still_knows_keys_tokens_and_incidents(tmp_path: Path) -> None:
    port = free_port()
    state_file = tmp_path / "data" / "sandbox-state.json"

    async with sandbox_process(port, "--state-file", str(state_file)) as client:
        tokens = await connect(client)
        service_id, integration_id, key = await _new_integration(client, tokens["access_token"])
        assert (await send(client, trigger(key, "disk-1"))).status_code == 202
        before = await _incident(client, "disk-1")
        account_before = (await client.get("/_sandbox/accounts/acme-corp")).json()
        jwks_before = (await client.get("/identity/global/oauth/anonymous/jwks")).json()

    assert state_file.exists()
    async with sandbox_process(port, "--state-file", str(state_file)) as client:
        token = tokens["access_token"]
        integration = await client.get(
            f"/us/api/services/{service_id}/integrations/{integration_id}", headers=bearer(token)
        )
        ack = await send(client, follow_up(key, "acknowledge", "disk-1"))
        after = await _incident(client, "disk-1")
        account_after = (await client.get("/_sandbox/accounts/acme-corp")).json()
        jwks_after = (await client.get("/identity/global/oauth/anonymous/jwks")).json()
        renewed = await refresh(client, tokens["refresh_token"])

    assert integration.status_code == 200, integration.text
    assert integration.json()["integration"]["integration_key"] == key
    assert ack.status_code == 202, ack.text
    assert (after["id"], after["incident_number"]) == (before["id"], before["incident_number"])
    assert after["status"] == "acknowledged"  # the open alert's key was kept with it
    assert account_after == account_before  # ids, keys, grants and subscriptions alike
    assert jwks_after == jwks_before
    assert renewed.status_code == 200, renewed.text


async def test_without_a_state_file_a_restart_forgets_everything() -> None:
    port = free_port()
    async with sandbox_process(port) as client:
        token = (await connect(client))["access_token"]
        assert (await client.get("/us/api/services", headers=bearer(token))).status_code == 200
    async with sandbox_process(port) as client:
        forgotten = await client.get("/us/api/services", headers=bearer(token))

    assert forgotten.status_code == 401


def test_the_environment_variable_names_the_file_too() -> None:
    assert state_file_from_env({"PDSANDBOX_STATE_FILE": "/data/sandbox.json"}) == (
        "/data/sandbox.json"
    )
    assert state_file_from_env({"PDSANDBOX_STATE_FILE": "  "}) is None
    assert state_file_from_env({}) is None


async def test_what_is_loaded_is_exactly_what_was_saved(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    clock = FakeClock()
    first = create_sandbox_app(sandbox_config(), clock, state_file=path)
    transport = httpx2.ASGITransport(app=first)
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        token = (await connect(client))["access_token"]
        _, _, key = await _new_integration(client, token)
        await send(client, trigger(key, "a"))
        await send(client, trigger(key, "b"))
        await send(client, follow_up(key, "resolve", "a"))
        (open_,) = [
            i for i in sandbox_state(first).incidents.incidents.values() if i.incident_key == "b"
        ]
        noted = await client.post(
            f"/us/api/incidents/{open_.id}/notes",
            json={"note": {"content": "kept"}},
            headers=bearer(token) | {"From": "bob@acme.example"},
        )
        assert noted.status_code == 200, noted.text
        sub_id, _ = await subscribe(client, token)
        switched_off = await client.put(
            f"/us/api/webhook_subscriptions/{sub_id}",
            json={"webhook_subscription": {"active": False}},
            headers=bearer(token),
        )
        assert switched_off.status_code == 200, switched_off.text
        await client.post("/_sandbox/clock/advance", json={"seconds": 3600})
    saved = first.state.state_file
    assert isinstance(saved, StateFile)
    saved.close()

    second = create_sandbox_app(sandbox_config(), clock, state_file=path)

    assert dump_state(sandbox_state(second)) == dump_state(sandbox_state(first))
    (kept,) = [i for i in sandbox_state(second).incidents.incidents.values() if i.notes]
    assert [n.content for n in kept.notes] == ["kept"]
    assert not sandbox_state(second).webhook_subscriptions[sub_id].enabled
    left = [p.name for p in tmp_path.iterdir()]  # noqa: ASYNC240 - a test's own directory
    assert left == ["state.json"]  # no temporary file left behind


async def test_changes_are_written_shortly_after_a_request(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    app = create_sandbox_app(sandbox_config(), FakeClock(), state_file=path)
    kept = app.state.state_file
    assert isinstance(kept, StateFile)
    kept.delay = 0.01
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        await client.get("/")
        assert not path.exists()  # a read changes nothing
        token = (await connect(client))["access_token"]
        for _ in range(200):
            if path.exists():
                break
            await asyncio.sleep(0.01)

    grants = json.loads(path.read_text())["oauth"]["tokens"]
    assert token in {t["value"] for t in grants}
    assert kept.dirty is False


def test_an_unreadable_state_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": "something else"}')

    with pytest.raises(StateFileError, match=r"state\.json"):
        create_sandbox_app(sandbox_config(), state_file=path)
    assert path.read_text() == '{"format": "something else"}'  # left for the user to look at
