"""Errors a user can cause. Each maps to one JSON-RPC error code and a ``data.kind``.

The message is written for a person: it says what is wrong and what to do.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SpadError(Exception):
    """Something went wrong in spad."""

    code: ClassVar[int] = -32000
    kind: ClassVar[str] = "invalid"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_data(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.data}


class InvalidParams(SpadError):
    """The request's params do not have the right shape (JSON-RPC -32602)."""

    code = -32602
    kind = "invalid"


class NotFound(SpadError):
    """What the request names does not exist."""

    code = -32001
    kind = "not_found"


class Conflict(SpadError):
    """The request clashes with the current state (exists already, running, ...)."""

    code = -32002
    kind = "conflict"


class Forbidden(SpadError):
    """The request is never allowed (deleting a project, ...)."""

    code = -32003
    kind = "forbidden"


class Invalid(SpadError):
    """The request is well formed but cannot be carried out as given."""

    code = -32004
    kind = "invalid"


class Refused(SpadError):
    """Who asks may not: no token, a foreign origin, a Host that is not this server's."""

    code = -32000
    kind = "forbidden"


# JSON-RPC 2.0's own errors: the envelope, not the method, is wrong (or the server failed).


class ParseError(SpadError):
    """The body is not JSON."""

    code = -32700
    kind = "invalid"


class InvalidRequest(SpadError):
    """The body is JSON but not a request (or the HTTP request itself is malformed)."""

    code = -32600
    kind = "invalid"


class MethodNotFound(SpadError):
    """No such method (or route)."""

    code = -32601
    kind = "not_found"


class InternalError(SpadError):
    """The server failed; its log has the details, the reply says only that."""

    code = -32603
    kind = "internal"


def error_reply(error: SpadError, request_id: Any = None) -> dict[str, Any]:
    """The JSON-RPC 2.0 error response for ``error``: every error body spad sends is built
    here, its code and ``data.kind`` taken from the error's class."""
    body = {"code": error.code, "message": error.message, "data": error.to_data()}
    return {"jsonrpc": "2.0", "error": body, "id": request_id}


class HomeError(Exception):
    """The home folder is missing, unwritable or broken; the server cannot start."""
