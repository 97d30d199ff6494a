"""The HTTP side: ``POST /rpc`` and ``POST /`` carry JSON-RPC 2.0; ``PUT`` and ``GET
/files/<area>/<path>`` stream files. Token and origin are checked on every route.

Every refusal has a JSON error body in JSON-RPC's shape, so ``curl`` users see why.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from spad.home import Home
from spad.server import files, rpc
from spad.server.methods import METHODS, Service
from spad.server.replies import MAX_FILE, SERVICE, refusal
from spad.store import audit

log = logging.getLogger("spad.http")

MAX_BODY = 16 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def _foreign_origin(request: web.Request) -> bool:
    """A browser page from elsewhere sends its own Origin; only ours may drive the server."""
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin.rstrip("/") != f"{request.scheme}://{request.host}"


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Token first (nothing is said to a stranger), then the origin."""
    if not request.app[TOKEN].accepts(request.headers.get("Authorization", "")):
        return refusal(
            401,
            -32000,
            "unauthorized: send 'Authorization: Bearer <token>' with "
            "the contents of $SPA_HOME/token",
            "forbidden",
        )
    if _foreign_origin(request):
        return refusal(
            403,
            -32000,
            "refused: requests from a web page of another origin cannot drive spad",
            "forbidden",
        )
    return await handler(request)


def client_of(request: web.Request) -> str:
    return request.remote or "unknown"


async def handle_rpc(request: web.Request) -> web.StreamResponse:
    if (request.content_length or 0) > MAX_BODY:
        return _too_large()
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large()
    service = request.app[SERVICE]
    client = client_of(request)

    def record(method: str, outcome: str, detail: str) -> None:
        audit.record(service.conn, method, client, outcome, detail)

    reply = rpc.handle(body, METHODS, service, record)
    if reply is None:
        return web.Response(status=204)
    return web.Response(body=reply, content_type="application/json")


def _too_large() -> web.Response:
    return refusal(
        413,
        rpc.INVALID_REQUEST,
        f"request body over {MAX_BODY // (1024 * 1024)} MiB: send less",
        "invalid",
    )


def make_app(service: Service, max_file_size: int = files.DEFAULT_MAX_FILE) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[guard])
    app[SERVICE] = service
    app[TOKEN] = TokenCheck(service.home)
    app[MAX_FILE] = max_file_size
    app.router.add_post("/rpc", handle_rpc)
    app.router.add_post("/", handle_rpc)
    app.router.add_put("/files/{path:.*}", files.put)
    app.router.add_get("/files/{path:.*}", files.get)
    return app
