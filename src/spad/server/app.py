"""The HTTP side: ``POST /rpc`` and ``POST /`` carry JSON-RPC 2.0; token, size and origin checks.

Every refusal has a JSON-RPC error body, so ``curl`` users see why.
"""

from __future__ import annotations

import hmac
import logging
import os

from aiohttp import web

from spad.home import Home
from spad.server import rpc
from spad.server.methods import METHODS, Service

log = logging.getLogger("spad.http")

MAX_BODY = 16 * 1024 * 1024
SERVICE: web.AppKey[Service] = web.AppKey("service", Service)


class TokenCheck:
    """Compares a request's bearer token with ``$SPA_HOME/token``, re-read when the file
    changes, so a rotated token takes effect at once."""

    def __init__(self, home: Home) -> None:
        self._home = home
        self._stamp: tuple[int, int] | None = None
        self._token = b""

    def accepts(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        return hmac.compare_digest(given.strip().encode(), self._current())

    def _current(self) -> bytes:
        stat = os.stat(self._home.token_file)
        stamp = (stat.st_ino, stat.st_mtime_ns)
        if stamp != self._stamp:
            self._token = self._home.token().encode()
            self._stamp = stamp
        return self._token


TOKEN: web.AppKey[TokenCheck] = web.AppKey("token", TokenCheck)


def _refusal(status: int, code: int, message: str, kind: str) -> web.Response:
    body = {
        "jsonrpc": "2.0",
        "error": {"code": code, "message": message, "data": {"kind": kind}},
        "id": None,
    }
    return web.json_response(body, status=status)


def _foreign_origin(request: web.Request) -> bool:
    """A browser page from elsewhere sends its own Origin; only ours may drive the server."""
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin.rstrip("/") != f"{request.scheme}://{request.host}"


async def handle_rpc(request: web.Request) -> web.StreamResponse:
    if not request.app[TOKEN].accepts(request.headers.get("Authorization", "")):
        return _refusal(
            401,
            -32000,
            "unauthorized: send 'Authorization: Bearer <token>' with "
            "the contents of $SPA_HOME/token",
            "forbidden",
        )
    if _foreign_origin(request):
        return _refusal(
            403,
            -32000,
            "refused: requests from a web page of another origin cannot drive spad",
            "forbidden",
        )
    if (request.content_length or 0) > MAX_BODY:
        return _too_large()
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large()
    reply = rpc.handle(body, METHODS, request.app[SERVICE])
    if reply is None:
        return web.Response(status=204)
    return web.Response(body=reply, content_type="application/json")


def _too_large() -> web.Response:
    return _refusal(
        413,
        rpc.INVALID_REQUEST,
        f"request body over {MAX_BODY // (1024 * 1024)} MiB: send less",
        "invalid",
    )


def make_app(service: Service) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[SERVICE] = service
    app[TOKEN] = TokenCheck(service.home)
    app.router.add_post("/rpc", handle_rpc)
    app.router.add_post("/", handle_rpc)
    return app
