"""The sandbox's access log (uvicorn's, as `make run` shows it) never prints a query string:
the OAuth requests carry codes, states and PKCE verifiers there."""

from __future__ import annotations

import logging
import logging.config

import pytest

from pdsandbox.server import log_config


def test_access_lines_leave_the_query_string_out(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(log_config())
    try:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/oauth/authorize?client_id=c&state=secret-state&code_challenge=xyz",
            "1.1",
            302,
        )
        printed = capsys.readouterr()
        line = printed.out + printed.err
        assert '"GET /oauth/authorize HTTP/1.1" 302' in line
        assert "secret-state" not in line
    finally:
        # Their handlers hold this test's captured streams.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).handlers.clear()
