"""The JSON-RPC 2.0 envelope, with the specification's own examples (section 7) as tests."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

import pytest

from spad.errors import Conflict
from spad.server.params import checked, text
from spad.server.rpc import Method, handle


def subtract(_ctx: Any, params: Any) -> Any:
    if isinstance(params, list):
        return params[0] - params[1]
    return params["minuend"] - params["subtrahend"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Named:
    name: str = checked(text())


calls: list[str] = []

METHODS = {
    "subtract": Method(subtract),
    "sum": Method(lambda _c, p: sum(p)),
    "update": Method(lambda _c, p: calls.append("update")),
    "notify_hello": Method(lambda _c, p: calls.append("hello")),
    "get_data": Method(lambda _c, p: ["hello", 5]),
    "named": Method(lambda _c, p: p.name, Named),
    "busy": Method(lambda _c, p: (_ for _ in ()).throw(Conflict("busy: stop it first"))),
    "crash": Method(lambda _c, p: 1 / 0),
}


def rpc(body: str) -> Any:
    reply = handle(body.encode(), METHODS, None)
    return None if reply is None else json.loads(reply)


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
            {"jsonrpc": "2.0", "result": 19, "id": 1},
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
            {"jsonrpc": "2.0", "result": -19, "id": 2},
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42},'
            ' "id": 3}',
            {"jsonrpc": "2.0", "result": 19, "id": 3},
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23},'
            ' "id": 4}',
            {"jsonrpc": "2.0", "result": 19, "id": 4},
        ),
    ],
)
def test_rpc_call(request_text: str, expected: Any) -> None:
    assert rpc(request_text) == expected


def test_notifications_get_no_reply() -> None:
    calls.clear()
    assert rpc('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}') is None
    assert rpc('{"jsonrpc": "2.0", "method": "foobar"}') is None
    assert calls == ["update"]


def test_non_existent_method() -> None:
    reply = rpc('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
    assert reply["error"]["code"] == -32601 and reply["id"] == "1"


def test_invalid_json() -> None:
    reply = rpc('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert reply["error"]["code"] == -32700 and reply["id"] is None


def test_invalid_request_object() -> None:
    reply = rpc('{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
    assert reply["error"]["code"] == -32600 and reply["id"] is None


def test_batch_invalid_json() -> None:
    reply = rpc(
        '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
        '{"jsonrpc": "2.0", "method"]'
    )
    assert reply["error"]["code"] == -32700 and reply["id"] is None


def test_empty_array() -> None:
    reply = rpc("[]")
    assert reply["error"]["code"] == -32600 and reply["id"] is None


def test_invalid_batch_but_not_empty() -> None:
    reply = rpc("[1]")
    assert [r["error"]["code"] for r in reply] == [-32600]


def test_invalid_batch() -> None:
    reply = rpc("[1,2,3]")
    assert [(r["error"]["code"], r["id"]) for r in reply] == [(-32600, None)] * 3


def test_rpc_call_batch() -> None:
    reply = rpc("""[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]""")
    assert reply[0] == {"jsonrpc": "2.0", "result": 7, "id": "1"}
    assert reply[1] == {"jsonrpc": "2.0", "result": 19, "id": "2"}
    assert reply[2]["error"]["code"] == -32600 and reply[2]["id"] is None
    assert reply[3]["error"]["code"] == -32601 and reply[3]["id"] == "5"
    assert reply[4] == {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
    assert len(reply) == 5


def test_rpc_call_batch_all_notifications() -> None:
    assert (
        rpc(
            '[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
            '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]'
        )
        is None
    )


KIND_OF_CODE = {
    -32700: "invalid",
    -32600: "invalid",
    -32601: "not_found",
    -32602: "invalid",
    -32603: "internal",
    -32002: "conflict",
}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"method": "sum", "params": [1], "id": 1}', -32600),
        ('{"jsonrpc": "1.0", "method": "sum", "params": [1], "id": 1}', -32600),
        ('{"jsonrpc": "2.0", "method": "sum", "params": [1], "id": [1]}', -32600),
        ('{"jsonrpc": "2.0", "method": "sum", "params": [1], "id": true}', -32600),
        ('{"jsonrpc": "2.0", "method": "sum", "params": 3, "id": 1}', -32600),
        ('{"jsonrpc": "2.0", "method": "sum", "params": [1], "id": 1, "x": 0}', -32600),
        ('{"jsonrpc": "2.0", "method": "named", "params": {"name": 3}, "id": 1}', -32602),
        ('{"jsonrpc": "2.0", "method": "named", "params": {"nom": "a"}, "id": 1}', -32602),
        ('{"jsonrpc": "2.0", "method": "named", "params": ["a"], "id": 1}', -32602),
        ('{"jsonrpc": "2.0", "method": "busy", "id": 1}', -32002),
        ('{"jsonrpc": "2.0", "method": "crash", "id": 1}', -32603),
        ('"just a string"', -32600),
        ("[" * 100 + "]" * 100, -32600),
        ("[" * 100_000, -32700),
        (b"\xff\xfe".decode("latin-1"), -32700),
    ],
)
def test_each_error_code(body: str, code: int) -> None:
    reply = rpc(body)
    assert reply["error"]["code"] == code
    # Every error, the envelope's own too, says its kind, as the class that made it does.
    assert reply["error"]["data"]["kind"] == KIND_OF_CODE[code]


def test_invalid_params_names_the_field_and_application_errors_carry_a_kind() -> None:
    reply = rpc('{"jsonrpc": "2.0", "method": "named", "params": {"nom": "a"}, "id": 1}')
    assert "nom: unknown key" in reply["error"]["message"]
    assert "name: required" in reply["error"]["message"]
    reply = rpc('{"jsonrpc": "2.0", "method": "busy", "id": 1}')
    assert reply["error"]["data"] == {"kind": "conflict"}
    assert "stop it first" in reply["error"]["message"]
    reply = rpc('{"jsonrpc": "2.0", "method": "crash", "id": 1}')
    assert "Traceback" not in reply["error"]["message"]


def test_an_error_in_a_notification_is_not_sent() -> None:
    assert rpc('{"jsonrpc": "2.0", "method": "crash"}') is None


def test_a_lone_surrogate_in_params_is_invalid_and_audited() -> None:
    called: list[object] = []
    audited: list[tuple[str, str, str]] = []
    methods = {"act": Method(lambda ctx, params: called.append(params), mutating=True)}
    body = b'{"jsonrpc": "2.0", "method": "act", "params": {"k\\udcff": 1}, "id": 1}'
    reply = json.loads(handle(body, methods, None, lambda *row: audited.append(row)) or b"")
    assert reply["error"]["code"] == -32602 and not called
    assert audited and audited[0][1].startswith("error -32602")


def test_a_surrogate_in_a_result_is_sent_escaped() -> None:
    methods = {"name": Method(lambda ctx, params: "odd\udcff")}
    reply = handle(b'{"jsonrpc": "2.0", "method": "name", "id": 1}', methods, None)
    assert reply is not None and json.loads(reply)["result"] == "odd\udcff"


def test_a_batch_stops_at_its_reply_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from spad.server import rpc

    monkeypatch.setattr(rpc, "MAX_BATCH_REPLY", 1100)  # three replies of 300 fit
    ran: list[int] = []

    def big(ctx: object, params: dict[str, int]) -> str:
        ran.append(params["n"])
        return "x" * 300

    methods = {"big": rpc.Method(big)}
    batch = [{"jsonrpc": "2.0", "method": "big", "params": {"n": i}, "id": i} for i in range(6)]
    replies = json.loads(rpc.handle(json.dumps(batch).encode(), methods, None) or b"")
    assert [("result" in r) for r in replies] == [True, True, True, False, False, False]
    assert ran == [0, 1, 2, 3]  # the one that crossed ran; the rest were not made
    assert all(r["error"]["data"]["kind"] == "invalid" for r in replies[3:])
    assert all(r["error"]["data"]["limit"] == rpc.OVER_BUDGET_LIMIT for r in replies[3:])


def test_a_change_refused_by_the_envelope_is_audited() -> None:
    audited: list[tuple[str, str, str]] = []
    methods = {"act": Method(lambda ctx, params: None, mutating=True)}
    for body in (
        b'{"jsonrpc": "2.0", "method": "act", "params": 5, "id": 1}',
        b'{"jsonrpc": "2.0", "method": "act", "id": 1, "extra": 1}',
        b'{"jsonrpc": "2.0", "method": ["act"], "id": 1}',
    ):
        reply = json.loads(handle(body, methods, None, lambda *row: audited.append(row)) or b"")
        assert reply["error"]["code"] == -32600
    assert [row[0] for row in audited] == ["act", "act"]
    assert all(row[1].startswith("error -32600") for row in audited)


def test_a_store_that_refuses_writes_is_answered_and_the_audit_never_costs_the_reply(
    tmp_path: Any,
) -> None:
    import sqlite3

    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(tmp_path / "s.db", timeout=0, isolation_level=None)

    def write(_c: Any, _p: Any) -> None:
        other.execute("INSERT INTO t VALUES (1)")

    def audit(method: str, outcome: str, detail: str) -> None:
        other.execute("INSERT INTO t VALUES (2)")

    methods = {"write": Method(write, mutating=True)}
    body = b'{"jsonrpc": "2.0", "method": "write", "id": 1}'
    reply = json.loads(handle(body, methods, None, audit) or b"")
    holder.close()
    other.close()
    assert reply["id"] == 1 and reply["error"]["code"] == -32603
    assert reply["error"]["message"].startswith("database busy: ")


def _store_error(code: int, text: str) -> Any:
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code  # what the sqlite3 module sets from SQLite's extended code
    raise exc


@pytest.mark.parametrize(
    ("code", "text"), [(10 | (8 << 8), "disk I/O error"), (8, "attempt to write a readonly db")]
)
def test_a_store_that_cannot_be_written_is_said_with_what_to_check(code: int, text: str) -> None:
    """An immutable spa.db (chattr +i) was an internal error, 'the server log has the details'."""
    methods = {"write": Method(lambda _c, _p: _store_error(code, text))}
    reply = handle(b'{"jsonrpc": "2.0", "method": "write", "id": 1}', methods, None)
    assert reply is not None
    message = json.loads(reply)["error"]["message"]
    assert text in message and "nothing was changed" in message and "immutable" in message
