"""JSON error replies, shared by the routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spad.errors import (
    Conflict,
    Forbidden,
    InternalError,
    Invalid,
    MethodNotFound,
    NotFound,
    Refused,
    SpadError,
    error_reply,
)

if TYPE_CHECKING:
    from spad.server.http import Request

#: The HTTP status that goes with each kind of error outside JSON-RPC (routes, files).
HTTP_STATUS: dict[type[SpadError], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Refused: 403,
    MethodNotFound: 404,
    InternalError: 500,
}


async def refuse(request: Request, error: SpadError, status: int | None = None) -> None:
    """Answer ``request`` with ``error`` in JSON-RPC's shape, with the HTTP status that goes
    with its class unless ``status`` is given."""
    await request.respond_json(status or HTTP_STATUS.get(type(error), 400), error_reply(error))
