"""Reading a request's body: the one reader every route uses. How much it may be is the
route's declaration (app/web/routing.py); how long it may take is the caller's `within`."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from app.errors import InputError
from app.jsoncodec import loads


async def read_body(request: Request, *, within: float | None = None) -> bytes:
    if within is None:
        # Nearly every request (only a drop-in with its key in the body has a time limit):
        # `asyncio.timeout(None)` would still make and enter a timeout context for it.
        return await _read(request)
    try:
        async with asyncio.timeout(within):
            return await _read(request)
    except TimeoutError as exc:
        raise InputError(
            "",
            f"request body did not arrive within {within:g} seconds "
            "(PDCONNECT_DROP_IN_BODY_SECONDS)",
            status=408,
        ) from exc


async def _read(request: Request) -> bytes:
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
    return bytes(raw)


def parse_json(raw: bytes) -> object:
    try:
        return loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("", f"request body is not valid JSON: {exc}", status=400) from exc
    except RecursionError as exc:
        # A megabyte of `[` nests deeper than the decoder can go.
        raise InputError("", "request body is nested too deeply", status=400) from exc


async def read_json(request: Request, *, within: float | None = None) -> object:
    raw = await read_body(request, within=within)
    if not raw:
        raise InputError("", "request body is empty", status=400)
    return parse_json(raw)
