"""``GET /ui/``: the dashboard's files, from spad's own package (no CDN: it works offline).

They load without a token (a browser sends none when it navigates); they hold no data. The
page asks for the token and sends it with every request for data. The policy header keeps the
page to its own files and its own server.
"""

from __future__ import annotations

import functools

from spad.errors import MethodNotFound
from spad.server.http import Request
from spad.server.replies import refuse

PREFIX = "/ui"
TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_ui(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@functools.cache
def _file(name: str) -> bytes:
    from importlib import resources  # at the first page: an idle server does without it

    return (resources.files("spad") / "ui" / name).read_bytes()


async def serve(request: Request) -> None:
    if request.path == PREFIX:
        await request.respond(308, b"", "text/plain", {"Location": PREFIX + "/"})
        return
    name = request.path[len(PREFIX) + 1 :] or "index.html"
    if name not in TYPES:
        await refuse(request, MethodNotFound(f"no such file of the dashboard: {name}"))
        return
    await request.respond(200, _file(name), TYPES[name], HEADERS)
