"""JSON error replies, shared by the routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spad.errors import Conflict, Forbidden, Invalid, NotFound, SpadError

if TYPE_CHECKING:
    from spad.server.http import Request

#: The HTTP status that goes with each kind of error outside JSON-RPC (files).
HTTP_STATUS: dict[type[SpadError], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}


async def refusal(request: Request, status: int, code: int, message: str, kind: str) -> None:
    await request.respond_json(
        status,
        {
            "jsonrpc": "2.0",
            "error": {"code": code, "message": message, "data": {"kind": kind}},
            "id": None,
        },
    )


async def refuse(request: Request, error: SpadError, status: int | None = None) -> None:
    await refusal(
        request, status or HTTP_STATUS.get(type(error), 400), error.code, error.message, error.kind
    )
