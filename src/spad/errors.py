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


class HomeError(Exception):
    """The home folder is missing, unwritable or broken; the server cannot start."""
