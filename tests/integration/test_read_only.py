"""``spad token --read-only``: a second token that may read everything and change nothing."""

from __future__ import annotations

import contextlib
import stat
import urllib.error
import urllib.request
from typing import Any

import pytest

from spad.cli.client import Client, ServerError
from tests.conftest import Server, run_spad, task, wait_for

CHANGES: dict[str, dict[str, Any]] = {
    "create": {"project": {"name": "pr1", "workflows": [{"name": "wf9", "tasks": []}]}},
    "run": {"project": "pr1", "workflow": "wf1"},
    "stop": {"project": "pr1", "workflow": "wf1"},
    "restart": {"project": "pr1", "workflow": "wf1"},
    "delete": {"project": "pr1", "workflow": "wf1"},
    "set_status": {"project": "pr1", "workflow": "wf1", "task": "t1", "status": "waiting"},
    "select_project": {"project": "pr1"},
    "alarm_ack": {"id": 1},
    "signal_raise": {"source": "a", "kind": "b", "severity": "info"},
    # Not audited when allowed, but a change all the same: it holds off the idle timeout.
    "heartbeat": {"project": "pr1", "workflow": "wf1", "task": "t1"},
}


def read_only_token(server: Server) -> str:
    made = run_spad("token", "--read-only", "--home", str(server.home))
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_the_read_only_token_is_made_once_and_kept_private(server: Server) -> None:
    token = read_only_token(server)
    assert len(token) >= 32 and token != server.token
    assert read_only_token(server) == token
    mode = (server.home / "token-read-only").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_it_reads_everything_and_changes_nothing(server: Server) -> None:
    server.define("wf1", task("t1", "simple", "60"))
    server.call("run", project="pr1", workflow="wf1")
    server.wait_task("wf1", "t1", "running")
    reader = Client(server.url, read_only_token(server))  # works at once: no restart
    assert reader.call("status", project="pr1", workflow="wf1")["status"] == "running"
    assert reader.call("list")["projects"][0]["name"] == "pr1"
    logs = {"project": "pr1", "workflow": "wf1", "task": "t1"}
    wait_for(lambda: "sleeps 60s" in str(reader.call("logs", **logs)))
    assert reader.call("events", project="pr1")["events"]
    before = server.call("dump", project="pr1")
    for method, params in CHANGES.items():
        with pytest.raises(ServerError) as refused:
            reader.call(method, **params)
        assert refused.value.data["kind"] == "forbidden", method
        assert "may only read" in refused.value.message
    assert server.call("dump", project="pr1") == before
    assert server.status("wf1")["status"] == "running"
    assert server.call("alarms_list")["alarms"] == []
    refusals = [
        e for e in server.call("audit", limit=100)["entries"] if "may only read" in e["outcome"]
    ]
    assert {e["method"] for e in refusals} == set(CHANGES)
    server.call("stop", project="pr1", workflow="wf1", force=True)


def test_it_streams_scrapes_and_gets_files_but_cannot_put_one(server: Server) -> None:
    token = read_only_token(server)
    (server.home / "data" / "in.txt").write_text("hello")
    for path in ("/metrics", "/files/data/in.txt", "/info"):
        request = urllib.request.Request(server.url + path)
        request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, path
            if path == "/info":
                assert b'"read_only": true' in response.read()
    events = Client(server.url, token).events()
    assert next(events).comment == "spad event stream"
    events.close()
    put = urllib.request.Request(server.url + "/files/data/new.txt", data=b"x", method="PUT")
    put.add_header("Authorization", f"Bearer {token}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=10)
    with contextlib.closing(refused.value):
        assert refused.value.code == 403
    assert not (server.home / "data" / "new.txt").exists()


def test_a_wrong_token_is_not_read_only(server: Server) -> None:
    read_only_token(server)
    status, body = server.post(
        '{"jsonrpc": "2.0", "method": "list", "id": 1}', {"Authorization": "Bearer nope" * 4}
    )
    assert status == 401 and body["error"]["data"]["kind"] == "forbidden"
