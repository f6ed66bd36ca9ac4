"""/metrics: Prometheus text, a token when the operator sets one, and an answer even when the
database is down (when it matters most)."""

from __future__ import annotations

import httpx2
from databases import Database

from app.deps import Deps, new_http_client
from app.main import create_app
from tests.conftest import BASE_URL, make_settings

TOKEN = "metrics-token-0123456789"


def client_for(deps: Deps) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    return httpx2.AsyncClient(transport=transport, base_url=BASE_URL)


async def test_a_metrics_token_is_demanded_when_set(db: Database) -> None:
    deps = Deps(
        config=make_settings(PDCONNECT_METRICS_TOKEN=TOKEN), db=db, http=new_http_client()
    )
    async with client_for(deps) as http:
        missing = await http.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["message"].startswith("a valid Authorization: Bearer")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    await deps.http.aclose()
    assert right.status_code == 200
    assert "pdconnect_outbox_events" in right.text


async def test_metrics_answer_while_the_database_is_unreachable() -> None:
    unreachable = Database("postgresql://pdconnect@127.0.0.1:9/none")
    deps = Deps(config=make_settings(), db=unreachable, http=new_http_client())
    async with client_for(deps) as http:
        response = await http.get("/metrics")
    await deps.http.aclose()
    assert response.status_code == 200
    assert "pdconnect_database_up 0.0" in response.text
    assert "# TYPE pdconnect_deliveries_total counter" in response.text
    assert "pdconnect_outbox_events{" not in response.text
