"""What every HTTP handler shares: the application keys and JSON error replies."""

from __future__ import annotations

from aiohttp import web

from spad.errors import Conflict, Forbidden, Invalid, NotFound, SpadError
from spad.server.methods import Service

SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
MAX_FILE: web.AppKey[int] = web.AppKey("max_file", int)

#: The HTTP status that goes with each kind of error outside JSON-RPC (files).
HTTP_STATUS: dict[type[SpadError], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}


def refusal(status: int, code: int, message: str, kind: str) -> web.Response:
    body = {
        "jsonrpc": "2.0",
        "error": {"code": code, "message": message, "data": {"kind": kind}},
        "id": None,
    }
    return web.json_response(body, status=status)


def refuse(error: SpadError, status: int | None = None) -> web.Response:
    return refusal(
        status or HTTP_STATUS.get(type(error), 400), error.code, error.message, error.kind
    )
