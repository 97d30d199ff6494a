"""The real server over real HTTP: token, limits, origin, JSON-RPC conformance, atomicity."""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest

from spad.cli.client import ServerError
from tests.conftest import Server, run_spad, seed, task, tree


def test_the_home_is_made_on_first_start(server: Server) -> None:
    home = server.home
    for name in ("simple", "error", "wait", "stubborn", "echo"):
        assert os.access(home / "bin" / name, os.X_OK), name
    assert (home / "bin" / "echo").is_symlink()
    assert (home / "data").is_dir() and (home / "logs").is_dir()
    assert stat.S_IMODE((home / "token").stat().st_mode) == 0o600
    assert len(server.token) >= 32
    journal = server.db().execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"
    assert server.db().execute("PRAGMA user_version").fetchone()[0] >= 1


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", "Bearer "])
def test_a_request_without_the_token_gets_401_with_a_jsonrpc_body(
    server: Server, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {"Authorization": ""}
    status, body = server.post('{"jsonrpc": "2.0", "method": "list", "id": 1}', headers)
    assert status == 401
    assert body["jsonrpc"] == "2.0" and "token" in body["error"]["message"]


def test_both_paths_serve_jsonrpc(server: Server) -> None:
    for path in ("/rpc", "/"):
        status, body = server.post('{"jsonrpc": "2.0", "method": "list", "id": 7}', path=path)
        assert (status, body) == (200, {"jsonrpc": "2.0", "result": {"projects": []}, "id": 7})


def test_a_body_over_16_mib_gets_413(server: Server) -> None:
    status, body = server.post(b" " * (16 * 1024 * 1024 + 1))
    assert status == 413 and "16 MiB" in body["error"]["message"]
    status, _ = server.post('{"jsonrpc": "2.0", "method": "list", "id": 1}')
    assert status == 200


def test_a_foreign_origin_is_refused_and_our_own_is_not(server: Server) -> None:
    request = '{"jsonrpc": "2.0", "method": "list", "id": 1}'
    status, body = server.post(request, {"Origin": "http://evil.example"})
    assert status == 403 and "origin" in body["error"]["message"]
    status, _ = server.post(request, {"Origin": server.url})
    assert status == 200


def test_notifications_and_batches_over_http(server: Server) -> None:
    status, body = server.post('{"jsonrpc": "2.0", "method": "list"}')
    assert (status, body) == (204, None)
    status, body = server.post(
        '[{"jsonrpc": "2.0", "method": "list", "id": 1}, 5,'
        ' {"jsonrpc": "2.0", "method": "nope", "id": 2}]'
    )
    assert status == 200
    assert [r.get("error", {}).get("code") for r in body] == [None, -32600, -32601]


def test_garbage_gets_errors_and_the_server_stays_up(server: Server) -> None:
    for garbage in (
        b"\x00\x01",
        b"{",
        b"[" * 50_000,
        b'{"jsonrpc": "2.0", "method": "create", "params": {"project": {"name": "a/b"}}, "id": 1}',
        b"null",
        b"1e999999",
    ):
        status, body = server.post(garbage)
        assert status == 200 and "error" in body
    assert server.call("list") == {"projects": []}


def test_an_error_in_the_middle_of_a_tree_changes_nothing(server: Server) -> None:
    server.call("create", **seed())
    before = server.call("dump", project="pr1")
    bad = tree(
        [
            {"name": "wf1", "tasks": [task("t13")]},
            {"name": "wf2", "tasks": [task("t24"), task("t21")]},
        ]
    )
    with pytest.raises(ServerError) as caught:
        server.call("create", **bad)
    assert caught.value.code == -32002 and caught.value.data["kind"] == "conflict"
    assert server.call("dump", project="pr1") == before


def test_bad_params_name_the_field(server: Server) -> None:
    with pytest.raises(ServerError) as caught:
        server.call("status", project="pr1", workflow="wf1", colour="red")
    assert caught.value.code == -32602 and "colour" in caught.value.message
    with pytest.raises(ServerError) as caught:
        server.call(
            "create",
            project={
                "name": "p",
                "workflows": [
                    {"name": "w", "tasks": [{"name": "t", "function": "simple", "retries": "many"}]}
                ],
            },
        )
    assert caught.value.code == -32602
    assert "project.workflows[0].tasks[0].retries" in caught.value.message


def test_errors_carry_the_contracts_kinds(server: Server) -> None:
    server.call("create", **seed())
    cases = [
        (lambda: server.call("status", project="pr1", workflow="nope"), "not_found"),
        (lambda: server.call("delete", project={"name": "pr1"}), "forbidden"),
        (lambda: server.call("select_project", project="nope"), "not_found"),
        (lambda: server.call("set_status", workflow="wf1", task="t11", status="done"), "invalid"),
    ]
    for call, kind in cases:
        with pytest.raises(ServerError) as caught:
            call()
        assert caught.value.data["kind"] == kind
        assert -32099 <= caught.value.code <= -32000 or caught.value.code == -32602


def test_status_before_any_run_shows_every_task_not_run(server: Server) -> None:
    server.call("create", **seed())
    state = server.call("status", workflow="wf1")
    assert (state["project"], state["workflow"], state["status"], state["run_id"]) == (
        "pr1",
        "wf1",
        "not run",
        None,
    )
    assert [(t["name"], t["status"], t["place"]) for t in state["tasks"]] == [
        ("t11", "not run", 1),
        ("t12", "not run", 2),
    ]
    assert set(state["tasks"][0]) == {
        "name",
        "place",
        "exec",
        "function",
        "params",
        "status",
        "pid",
        "attempt",
        "exit_code",
        "started_at",
        "ended_at",
        "restarts",
        "since",
        "next_attempt_at",
        "memory",
        "executor",
        "job",
    }
    assert (state["tasks"][0]["executor"], state["tasks"][0]["job"]) == ("local", None)


def test_list_and_the_current_project_survive_a_restart(home: Path, make_server) -> None:
    first = make_server().start()
    first.call("create", **seed())
    first.call("create", **tree([], project="other"))
    first.call("select_project", project="pr1")
    first.stop()
    second = make_server().start()
    listing = second.call("list")
    assert [(p["name"], p["current"]) for p in listing["projects"]] == [
        ("other", False),
        ("pr1", True),
    ]
    assert listing["projects"][1]["workflows"][0] == {
        "name": "wf1",
        "status": "not run",
        "run_id": None,
        "started_at": None,
        "ended_at": None,
        "restarts": 0,
    }
    assert second.call("dump")["context"]["project"]["name"] == "pr1"


def test_an_unwritable_home_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_spad("--home", str(blocker / "home"), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "--home" in result.stderr


def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_spad("--home", str(tmp_path / "h"), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 2 and "--listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_listen_address_is_a_usage_error(tmp_path: Path) -> None:
    result = run_spad("--home", str(tmp_path / "h"), "--listen", "nonsense")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr


def _maps(server: Server) -> str:
    assert server.process is not None
    return Path(f"/proc/{server.process.pid}/maps").read_text()


def _loaded_pydantic(server: Server) -> bool:
    return "pydantic_core" in _maps(server)


def test_a_server_without_tls_runs_without_ssl(server: Server) -> None:
    """asyncio would import ssl for nothing: 1.6 MiB of an idle server (TLS: test_access)."""
    server.call("list")
    assert "libssl" not in _maps(server)


def test_the_server_never_loads_pydantic(server: Server) -> None:
    """Pydantic and its compiled models cost a server about 10 MiB; definitions and spad.toml
    are validated with msgspec instead, which costs about 1."""
    for method, params in [
        ("list", {}),
        ("status", {"workflow": "nope"}),
        ("stop", {"workflow": "nope", "force": "yes"}),
        ("audit", {"limit": 5}),
        ("alarms_list", {"state": "open"}),
        ("file_list", {}),
        ("dump", {}),
    ]:
        server.post(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}))
    server.call("create", **seed())
    server.call("update", **seed())
    assert "msgspec/_core" in _maps(server)  # the check below looks at the right process
    assert not _loaded_pydantic(server)


def test_the_clients_batch_runs_and_stops_workflows_in_one_request(server: Server) -> None:
    """What a script starting or stopping many workflows sends: one request, a reply each."""
    for name in ("a", "b"):
        server.define(name, task("t", "simple", "60"))
    client = server.client()
    started = client.batch("run", [{"workflow": "a"}, {"workflow": "b"}, {"workflow": "zz"}])
    assert [sorted(r) for r in started] == [["id", "jsonrpc", "result"]] * 2 + [
        ["error", "id", "jsonrpc"]
    ]
    assert started[2]["error"]["code"] == -32001  # not found: named in the reply, not raised
    for name in ("a", "b"):
        server.wait_task(name, "t", "running")
    stopped = client.batch("stop", [{"workflow": "a"}, {"workflow": "b"}])
    assert all("result" in reply for reply in stopped)
    for name in ("a", "b"):
        server.wait_status(name, "stopped")
