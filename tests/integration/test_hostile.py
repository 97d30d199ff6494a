"""Hostile input: random and malformed params at every method, stalled and many clients.

Every request gets a JSON-RPC reply (never an internal error), the server stays up, and the
store stays consistent: SQLite's own checks pass and every workflow's places are 1..n.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spad.server.methods import METHODS
from tests.conftest import Server, seed

#: Integers at the edges that break a 64-bit store.
EDGE_INTS = st.one_of(
    st.integers(-3, 3), st.sampled_from([2**31, 2**62 + 1, 2**63, 2**70, -(2**63) - 1])
)
NAMES = st.sampled_from(["pr1", "wf1", "wf2", "t11", "t12", "x", "", "../x", "a/b", "é", "t\n"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    EDGE_INTS,
    st.floats(allow_nan=False),
    NAMES,
    st.text(max_size=20),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "project",
        "workflow",
        "task",
        "from",
        "force",
        "status",
        "run_id",
        "attempt",
        "tail",
        "offset",
        "path",
        "limit",
        "context",
        "name",
        "x",
    ]
)
#: Mostly well-aimed: real names, so that calls get past the first checks.
AIMED = st.fixed_dictionaries(
    {
        "project": st.just("pr1"),
        "workflow": st.sampled_from(["wf1", "wf2"]),
        "task": st.sampled_from(["t11", "t21"]),
    },
    optional={
        "run_id": EDGE_INTS,
        "attempt": EDGE_INTS,
        "tail": EDGE_INTS,
        "offset": EDGE_INTS,
        "status": NAMES,
        "force": JSON,
    },
)
PARAMS = st.one_of(AIMED, st.dictionaries(KEYS, JSON, max_size=5), JSON)

TASK = st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "function": st.sampled_from(["simple", "echo", "nope", "../bin"]),
        "place": st.integers(-1, 6),
        "exec": st.sampled_from(["await", "parallel", "x"]),
        "params": st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
        "retries": st.integers(-3, 3),
        "id": st.integers(-1, 9),
    },
)
WORKFLOW = st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "tasks": st.lists(TASK, max_size=4),
        "on_failure": st.sampled_from(["stop", "continue", "boom"]),
    },
)
TREE = st.fixed_dictionaries(
    {
        "project": st.fixed_dictionaries(
            {"name": st.sampled_from(["pr1", "pr2", "bad/name"])},
            optional={"workflows": st.lists(WORKFLOW, max_size=3), "id": st.integers(0, 3)},
        )
    }
)

ALLOWED_CODES = {-32700, -32600, -32601, -32602, -32000, -32001, -32002, -32003, -32004}


def assert_reply(status: int, reply: Any) -> None:
    assert status == 200, reply
    if "error" in reply:
        assert reply["error"]["code"] in ALLOWED_CODES, reply
        assert "Traceback" not in reply["error"]["message"]


def assert_consistent(server: Server) -> None:
    db = server.db()
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    rows = db.execute(
        "SELECT workflow_id, group_concat(place) FROM "
        "(SELECT workflow_id, place FROM tasks ORDER BY workflow_id, place) "
        "GROUP BY workflow_id"
    ).fetchall()
    for workflow_id, places in rows:
        assert [int(p) for p in places.split(",")] == list(range(1, places.count(",") + 2)), (
            workflow_id,
            places,
        )
    assert server.call("list") is not None


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=st.sampled_from(sorted(METHODS)), params=PARAMS)
def test_random_params_at_every_method(server: Server, method: str, params: Any) -> None:
    server.post(json.dumps({"jsonrpc": "2.0", "method": "create", "params": seed()}))
    if method in ("run", "stop"):  # keep them from spawning: only malformed shapes
        params = {"workflow": params} if not isinstance(params, dict) else params
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
    assert_reply(*server.post(body))


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=st.sampled_from(["create", "update", "delete"]), tree=TREE, wrap=st.booleans())
def test_random_trees_keep_the_store_consistent(
    server: Server, method: str, tree: dict[str, Any], wrap: bool
) -> None:
    params = {"context": tree} if wrap else tree
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
    assert_reply(*server.post(body))
    assert_consistent(server)


def test_the_seed_still_works_after_the_storm(server: Server) -> None:
    server.call("create", **seed())
    assert_consistent(server)


def test_huge_param_lists_and_deep_nesting_are_refused(server: Server) -> None:
    huge = {
        "project": {
            "name": "p",
            "workflows": [
                {
                    "name": "w",
                    "tasks": [{"name": "t", "function": "simple", "params": ["1"] * 100_000}],
                }
            ],
        }
    }
    status, reply = server.post(
        json.dumps({"jsonrpc": "2.0", "method": "create", "params": huge, "id": 1})
    )
    assert status == 200 and reply["error"]["code"] == -32602
    assert "params" in reply["error"]["message"]
    many = {f"k{i}": i for i in range(50_000)}
    status, reply = server.post(
        json.dumps({"jsonrpc": "2.0", "method": "list", "params": many, "id": 2})
    )
    assert status == 200 and reply["error"]["code"] == -32602
    deep = '{"jsonrpc": "2.0", "method": "list", "params": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    status, reply = server.post(deep)
    assert status == 200 and reply["error"]["code"] in (-32600, -32700)
    assert server.call("list") == {"projects": []}


def test_stalled_clients_do_not_block_others(server: Server) -> None:
    parts = urllib.parse.urlsplit(server.url)
    stalled = []
    try:
        for _ in range(50):
            sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
            sock.sendall(
                b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                b"Authorization: Bearer " + server.token.encode() + b"\r\n\r\n{"
            )
            stalled.append(sock)
        started = time.monotonic()
        assert server.call("list") == {"projects": []}
        assert time.monotonic() - started < 5
    finally:
        for sock in stalled:
            with contextlib.suppress(OSError):
                sock.close()


def test_200_concurrent_clients_are_all_served(server: Server) -> None:
    server.call("create", **seed())

    def one(i: int) -> int:
        status, reply = server.post(
            json.dumps(
                {"jsonrpc": "2.0", "method": "status", "params": {"workflow": "wf1"}, "id": i}
            )
        )
        assert status == 200 and reply["id"] == i and "result" in reply
        return i

    with ThreadPoolExecutor(max_workers=200) as pool:
        served = sorted(pool.map(one, range(200)))
    assert served == list(range(200))


def _integer_fields() -> list[tuple[str, str]]:
    found = []
    for name, method in sorted(METHODS.items()):
        if method.params is None:
            continue
        for field in dataclasses.fields(method.params):
            if "int" in str(field.type):
                found.append((name, field.metadata["alias"] or field.name))
    return found


FILLERS = {"project": "pr1", "workflow": "wf1", "task": "t11", "status": "running", "path": "data"}


def test_integers_beyond_64_bits_are_refused_at_every_method(server: Server) -> None:
    """SQLite stores 64-bit integers: larger ones must be invalid params, never a crash."""
    server.call("create", **seed())
    server.call("run", workflow="wf1")
    server.wait_status("wf1", "success0", timeout=60)
    fields = _integer_fields()
    assert ("logs", "run_id") in fields and ("audit", "limit") in fields
    for method, field in fields:
        params = METHODS[method].params
        assert params is not None
        names = {f.name for f in dataclasses.fields(params)}
        required = {k: v for k, v in FILLERS.items() if k in names}
        for value in (2**63, -(2**63) - 1, 2**80):
            body = json.dumps(
                {"jsonrpc": "2.0", "method": method, "params": {**required, field: value}, "id": 1}
            )
            status, reply = server.post(body)
            assert_reply(status, reply)
            assert reply.get("error", {}).get("code") == -32602, (method, field, reply)
