"""Every JSON-RPC error body comes from one builder, its code and kind from the error's class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from spad import errors
from spad.errors import (
    Conflict,
    InternalError,
    Invalid,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    Refused,
    SpadError,
    error_reply,
)

SRC = Path(errors.__file__).parent


@pytest.mark.parametrize(
    ("error", "code", "kind"),
    [
        (ParseError("x"), -32700, "invalid"),
        (InvalidRequest("x"), -32600, "invalid"),
        (MethodNotFound("x"), -32601, "not_found"),
        (InvalidParams("x"), -32602, "invalid"),
        (InternalError("x"), -32603, "internal"),
        (Refused("x"), -32000, "forbidden"),
        (Conflict("x"), -32002, "conflict"),
        (Invalid("x"), -32004, "invalid"),
    ],
)
def test_the_code_and_kind_come_from_the_class(error: SpadError, code: int, kind: str) -> None:
    assert error_reply(error, 7) == {
        "jsonrpc": "2.0",
        "error": {"code": code, "message": "x", "data": {"kind": kind}},
        "id": 7,
    }


def test_the_data_an_error_carries_goes_along() -> None:
    reply = error_reply(Conflict("running: stop it first", workflow="wf1"))
    assert reply["error"]["data"] == {"kind": "conflict", "workflow": "wf1"}
    assert reply["id"] is None


def _builds_an_error_body(node: ast.AST) -> bool:
    """A dict literal with ``code`` and ``message`` keys: an error body made by hand."""
    if not isinstance(node, ast.Dict):
        return False
    keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
    return {"code", "message"} <= keys


def test_no_module_but_errors_builds_an_error_body() -> None:
    builders = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if any(_builds_an_error_body(node) for node in ast.walk(ast.parse(path.read_text())))
    }
    assert builders == {"errors.py"}
