"""The baseline for the ingest benchmark: a hello-world Starlette endpoint at the same path,
served exactly as `pdconnect serve` serves the product (same `uvicorn.run` settings, one
process), so the ratio between the two is what pdconnect's own work costs.

It reads and parses the JSON body, as any endpoint taking alerts must, and answers 202 with a
small fixed document; nothing else (no database, no middleware).

With `--stock` it is served by uvicorn's own httptools protocol instead of pdconnect's
(app/web/protocol.py, which adds the request limits and writes an answer in one write): the
baseline as a plain Starlette deployment runs it.

    python -m bench.hello --port 8123 [--stock]
"""

from __future__ import annotations

import argparse
import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# Kept free of bench.stack's imports, so its memory is a bare Starlette app's.
LOOPBACK = "127.0.0.1"
ANSWER = {"events": [{"id": "hello", "dedup_key": "hello", "service": "hello", "status": "ok"}]}


async def alerts(request: Request) -> Response:
    json.loads(await request.body())
    return JSONResponse(ANSWER, status_code=202)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def app_factory() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/alerts", alerts, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    import uvicorn

    from app.cli.serve import REQUEST_DRAIN_SECONDS
    from app.web.protocol import CONCURRENCY_LIMIT, LimitedHttpToolsProtocol

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--stock", action="store_true", help="uvicorn's own httptools protocol, not pdconnect's"
    )
    args = parser.parse_args()
    # The same arguments app/cli/serve.py's cmd_serve passes, apart from the app.
    uvicorn.run(
        "bench.hello:app_factory",
        factory=True,
        host=LOOPBACK,
        port=args.port,
        workers=1,
        proxy_headers=False,
        http="httptools" if args.stock else LimitedHttpToolsProtocol,
        limit_concurrency=CONCURRENCY_LIMIT,
        timeout_graceful_shutdown=REQUEST_DRAIN_SECONDS,
        log_level="info",
        access_log=False,
    )


if __name__ == "__main__":
    main()
