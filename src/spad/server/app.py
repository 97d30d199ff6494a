"""The routes: ``POST /rpc`` and ``POST /`` carry JSON-RPC 2.0; ``PUT`` and ``GET
/files/<area>/<path>`` stream files; ``GET /events`` streams events, ``GET /metrics`` is for
Prometheus, ``GET /info`` tells the dashboard who it talks to. Token and origin are checked on
every request, except the dashboard's own files (``GET /ui/``: a browser cannot send a token
when it navigates; the page asks for the token and sends it with each request for data).

Every refusal has a JSON error body in JSON-RPC's shape, so ``curl`` users see why.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import sqlite3
import urllib.parse

# hmac.compare_digest itself, without hmac: importing hmac loads OpenSSL's libcrypto (1 MiB of
# an idle server's memory) for a comparison the interpreter has built in (hmac's own fallback).
from _operator import _compare_digest as compare_digest
from collections.abc import Callable, Mapping
from pathlib import Path

import spad
from spad import freed
from spad.areas import DEFAULT_MAX_FILE
from spad.errors import Forbidden, InternalError, InvalidRequest, MethodNotFound, Refused
from spad.home import MIN_TOKEN, Home
from spad.server import access, files, rpc, stream, ui
from spad.server.feed import EventFeed
from spad.server.hosts import HostCheck
from spad.server.http import BodyTooLarge, Request
from spad.server.replies import refuse
from spad.server.service import Service
from spad.server.signins import FailedSignIns
from spad.store import audit, runs
from spad.store.sqlite import trouble

log = logging.getLogger("spad.http")
MAX_BODY = 16 * 1024 * 1024
FILES = "/files/"
LIVE = ("/events", "/metrics", "/info")


@functools.cache
def version() -> str:
    """spad's version, looked up at the first scrape or dashboard (not at every start)."""
    return str(spad.__version__)


class TokenCheck:
    """Compares a request's bearer token with ``$SPA_HOME/token``, re-read when the file
    changes, so a rotated token takes effect at once."""

    def __init__(self, home: Home, path: Path | None = None) -> None:
        self._path = path or home.token_file
        self._stamp: tuple[int, int] | None = None
        self._token = b""

    def accepts(self, header: str) -> bool:
        scheme, _, given = header.partition(" ")
        # Only ASCII space and tab around the value (HTTP's own whitespace): str.strip() also
        # takes \xa0, \x85, \x1c..., which turned "Bearer \xa0" into an empty token.
        value = given.strip(" \t").encode("latin-1")  # the header's bytes, as sent
        token = self._current()
        if scheme.lower() != "bearer" or len(token) < MIN_TOKEN:
            return False  # an empty or cut token file (a failed rotation) lets nobody in
        return compare_digest(value, token)

    def _current(self) -> bytes:
        try:
            stat = os.stat(self._path)
        except OSError:  # gone, or (the read-only token) never made: nobody gets in with it
            return b""
        stamp = (stat.st_ino, stat.st_mtime_ns)
        if stamp != self._stamp:
            try:
                self._token = self._path.read_text().strip().encode()
            except (OSError, UnicodeDecodeError):
                self._token = b""
            self._stamp = stamp
        return self._token


def _public() -> bool:
    """What needs no token is never signed out."""
    return True


def _foreign_origin(request: Request) -> bool:
    """A browser page from elsewhere sends its own Origin; only ours may drive the server."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin.rstrip("/") != f"{request.scheme}://{request.headers.get('host', '')}"


@functools.cache
def _methods(read_only: bool) -> Mapping[str, rpc.Method]:
    """The methods a token may call, loaded at the first call: an idle server needs none."""
    from spad.server.methods import METHODS

    return access.read_only_methods(METHODS) if read_only else METHODS


class Api:
    def __init__(
        self,
        service: Service,
        max_file_size: int = DEFAULT_MAX_FILE,
        hosts: HostCheck | None = None,
        feed: EventFeed | None = None,
        public_metrics: bool = False,
    ) -> None:
        self.service = service
        self.max_file_size = max_file_size
        self.token = TokenCheck(service.home)
        self.hosts = hosts or HostCheck("127.0.0.1")
        self.failed_sign_ins = FailedSignIns(service.conn)
        self.read_token = TokenCheck(service.home, service.home.root / access.READ_ONLY_FILE)
        self.feed = feed
        self.public_metrics = public_metrics
        self.loading = freed.AfterLoading()

    async def __call__(self, request: Request) -> None:
        try:
            await self.route(request)
            self.loading.check()
        except OSError as exc:  # a file that vanished or cannot be read: say so, stay up
            log.warning("%s %s failed: %s", request.method, request.path, exc)
            if not request.started:
                await refuse(
                    request, InternalError(f"the server could not do it: {exc.strerror or exc}")
                )
        except sqlite3.OperationalError as exc:  # spa.db refused a write: say so, stay up
            kind = trouble(exc)
            if kind is None:
                raise
            log.warning("%s %s refused by the store: %s", request.method, request.path, exc)
            if not request.started:
                message = f"{kind}: spa.db refused a write on the way; check what was done, retry"
                await refuse(request, InternalError(message), 503)

    async def route(self, request: Request) -> None:
        """Host first (a rebound name is refused whatever it carries), then the dashboard's
        files (no token: a browser cannot send one when it navigates), then the token (nothing
        more is said to a stranger), then the origin, then the route."""
        if not self.hosts.accepts(request.headers.get("host"), request.local_address):
            await refuse(
                request,
                Refused(
                    f"refused: Host {request.headers.get('host')!r} is not an address of this "
                    "server (a name for it must be given with spad --allow-host NAME)"
                ),
            )
            return
        if await self.without_token(request):
            return
        header = request.headers.get("authorization", "")
        full = self.token.accepts(header)
        read_only = not full and self.read_token.accepts(header)
        if not (full or read_only):
            self.failed_sign_ins.failed(request.peer, f"{request.method} {request.path[:100]}")
            await refuse(
                request,
                Refused(
                    "unauthorized: send 'Authorization: Bearer "
                    "<token>' with the contents of $SPA_HOME/token"
                ),
                401,
            )
        elif _foreign_origin(request):
            await refuse(
                request,
                Refused("refused: requests from a web page of another origin cannot drive spad"),
            )
        elif request.path in ("/rpc", "/") and request.method == "POST":
            await self.rpc(request, read_only)
        elif request.method == "GET" and request.path in LIVE:
            # The stream ends once the token that opened it is rotated: checked at every wake.
            token = self.read_token if read_only else self.token
            await self.live(request, read_only, signed_in=functools.partial(token.accepts, header))
        elif request.path.startswith(FILES) and request.method in ("GET", "PUT"):
            remote = urllib.parse.unquote(request.path[len(FILES) :])
            if request.method == "PUT" and read_only:
                await refuse(request, Forbidden("this token may only read: it cannot copy files"))
            elif request.method == "PUT":
                await files.put(request, self.service, remote, self.max_file_size)
            else:
                await files.get(request, self.service, remote)
        else:
            await refuse(
                request,
                MethodNotFound(
                    f"no such route: {request.method} "
                    f"{request.path} (POST /rpc, PUT or GET /files/<area>/<path>, GET /events,"
                    " GET /metrics, GET /ui/)"
                ),
            )

    async def without_token(self, request: Request) -> bool:
        """Serve what needs no token: the dashboard's files, and the metrics when spad.toml
        makes them public. True when it was that."""
        if request.method == "GET" and ui.is_ui(request.path):
            await ui.serve(request)
            return True
        if self.public_metrics and request.method == "GET" and request.path == "/metrics":
            await self.live(request)
            return True
        return False

    async def live(
        self, request: Request, read_only: bool = False, signed_in: Callable[[], bool] = _public
    ) -> None:
        """The live view's reads: the event stream (which ends once ``signed_in`` says its
        token was rotated), the metrics, what the dashboard shows."""
        if request.path == "/events":
            if self.feed is None:
                await refuse(request, MethodNotFound("no event stream here"))
            else:
                await stream.serve(request, self.feed, signed_in)
        elif request.path == "/metrics":
            from spad.server import metrics

            body = metrics.render(self.service.conn, version())
            await request.respond(200, body, metrics.CONTENT_TYPE)
        else:
            info = {"version": version(), "host": socket.gethostname(), "read_only": read_only}
            await request.respond_json(200, info)

    async def rpc(self, request: Request, read_only: bool = False) -> None:
        try:
            body = await request.read(MAX_BODY)
        except BodyTooLarge:
            await refuse(
                request,
                InvalidRequest(f"request body over {MAX_BODY // (1024 * 1024)} MiB: send less"),
                413,
            )
            await request.discard()
            return
        service = self.service
        trail: list[tuple[str, str, str, str]] = []

        def record(method: str, outcome: str, detail: str) -> None:
            trail.append((runs.now(), method, outcome, detail))

        methods = _methods(read_only)
        reply = rpc.handle_parts(body, methods, service, record)
        del body  # up to 16 MiB, no longer needed while the reply goes out
        if trail:  # written together before the reply: one write lock for a whole batch
            try:
                audit.record_all(service.conn, request.peer, trail)
            except sqlite3.OperationalError as exc:  # the reply matters more than its trace
                log.warning("%d calls not in the audit trail: %s", len(trail), exc)
        if reply is None:
            await request.respond(204)
        else:
            await request.respond_parts(200, reply)
