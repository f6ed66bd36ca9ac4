from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx2
import pytest

from app.pagerduty.hosts import PagerDutyHosts, pagerduty_hosts
from app.pagerduty.oauth import OAuthApp

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
CLIENT_ID = "3f6e1c2a-pdconnect-client"
CLIENT_SECRET = "pdcs_client_secret_do_not_leak_0123456789"
REDIRECT_URI = "https://vendor.example/pagerduty/callback"

Handler = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture
def hosts() -> PagerDutyHosts:
    return pagerduty_hosts()


@pytest.fixture
def app() -> OAuthApp:
    return OAuthApp(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI)


class Recorder:
    """A MockTransport whose handler can be swapped per test, recording every request."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.handler: Handler = lambda request: httpx2.Response(500)
        self.closed = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.handler(request)


class ClosingCountingTransport(httpx2.MockTransport):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__(recorder)
        self._recorder = recorder

    async def aclose(self) -> None:
        self._recorder.closed += 1


@pytest.fixture
def pd() -> Recorder:
    return Recorder()


@pytest.fixture
async def http(pd: Recorder) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=ClosingCountingTransport(pd)) as client:
        yield client
