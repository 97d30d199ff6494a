"""Defects an operator met on a first day of use, each reproduced as it was met."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from spad.cli.client import ServerError
from tests.conftest import (
    REPO,
    VENV_BIN,
    Server,
    clean_env,
    task,
    wait_for,
)
from tests.e2e.test_cli import ok, refused, spa_ctl


def status_fields(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


# 1. A file holding a JSON-RPC request, and input that is no tree at all.


def test_create_accepts_the_command_files_and_refuses_another_method(server: Server) -> None:
    examples = REPO / "examples"
    assert "created in project pr1" in ok(
        server, "create", "-f", str(examples / "command_create.json")
    )
    message = refused(spa_ctl(server, "update", "-f", str(examples / "command_run.json")), 2)
    assert "'run'" in message and "update" in message


@pytest.mark.parametrize("text", ["[]", "3", '"x"', "null", '{"jsonrpc": "2.0"}', "[1, 2]"])
def test_no_tree_at_all_is_a_usage_error_not_a_traceback(server: Server, text: str) -> None:
    for command in ("create", "update", "delete"):
        result = spa_ctl(server, command, "-j", text)
        assert result.returncode in (1, 2), result
        assert "Traceback" not in result.stderr and result.stderr.startswith("spa_ctl: ")


# 2. A stop right after run: the tasks that never started are `not run`.


def test_a_stop_right_after_run_leaves_the_unstarted_tasks_not_run(server: Server) -> None:
    server.define("w", task("a", "simple", "30"), task("b", "simple", "30"))
    client = server.client()
    for _ in range(3):
        run_id = client.call("run", workflow="w")["run_id"]
        client.call("stop", workflow="w")
        state = server.wait_status("w", "stopped")
        assert state["run_id"] == run_id
        statuses = {t["name"]: t["status"] for t in state["tasks"]}
        assert statuses["b"] == "not run", statuses
        assert statuses["a"] in ("not run", "stopped"), statuses


# 3. One server per home.


@pytest.mark.parametrize("lock_file", ["kept", "removed by hand"])
def test_a_second_server_on_a_home_in_use_exits_2(server: Server, lock_file: str) -> None:
    """With its spad.lock removed, a second server locked a new file of that name and ran
    beside the first (and moved the home's url to itself)."""
    assert server.process is not None
    if lock_file != "kept":
        (server.home / "spad.lock").unlink()
    try:
        second = subprocess.run(
            [str(VENV_BIN / "spad"), "--home", str(server.home), "--listen", "127.0.0.1:0"],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a second spad went on serving a home in use")
    assert second.returncode == 2
    holder = f"spad pid {server.process.pid}" if lock_file == "kept" else "another spad"
    assert f"home {server.home} is in use by {holder}" in second.stderr
    assert "Traceback" not in second.stderr
    assert server.process.poll() is None
    assert server.call("list") is not None


# 4. A task reaches the server that runs now, even on another address.


def test_a_task_of_an_adopted_runner_reaches_the_new_server(
    make_server: Callable[..., Server],
) -> None:
    first = make_server().start()
    first.script(
        "later",
        'while [ ! -e "$SPA_HOME/data/go" ]; do sleep 0.05; done\n'
        "spa_ctl set_status -s waiting || exit 3\n",
    )
    first.define("w", task("t", "later"))
    first.call("run", workflow="w")
    first.wait_task("w", "t", "running")
    old_url = first.url
    first.stop()
    second = make_server().start()
    while second.url == old_url:  # the kernel gave the same free port back: ask another
        second.stop()
        second = make_server().start()
    (second.home / "data" / "go").write_text("")
    assert second.wait_task("w", "t", lambda s: s not in ("running", "waiting"))["status"] == (
        "success0"
    )


# 5. Tasks start with every signal at its default, however spad was started.


def test_tasks_start_with_default_signals_when_spad_ignores_sigquit(
    make_server: Callable[..., Server],
) -> None:
    spad = make_server()
    spad.ignored_signals = (signal.SIGQUIT, signal.SIGINT)
    spad.start()
    assert spad.process is not None
    assert int(status_fields(spad.process.pid)["SigIgn"], 16) & (1 << (signal.SIGQUIT - 1))
    # bash ignores SIGQUIT itself (its manual says so), whatever it inherited: look at sleep
    (spad.home / "bin" / "sleep").symlink_to("/bin/sleep")
    spad.define("w", task("t", "sleep", "30"))
    spad.call("run", workflow="w")
    pid = spad.wait_task("w", "t", "running")["pid"]
    fields = status_fields(pid)
    assert int(fields["SigIgn"], 16) == 0, fields["SigIgn"]
    assert int(fields["SigBlk"], 16) == 0, fields["SigBlk"]


# 6. file put keeps the execute bit for bin/; the error names --exec.


def test_file_put_keeps_the_local_execute_bit(server: Server, tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    assert "(executable)" in ok(server, "file", "put", str(tool), "bin/")
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\necho plain\n")
    plain.chmod(0o644)
    ok(server, "file", "put", str(plain), "bin/")
    server.define("w", task("a", "tool"))
    server.define("v", task("b", "plain"))
    ok(server, "run", "-w", "w")
    assert server.wait_status("w", "success0")
    message = refused(spa_ctl(server, "run", "-w", "v"), 1)
    assert "no executable plain" in message and "--exec" in message


# 7. A name that does not exist is not_found, whatever the command.


def test_stop_of_a_workflow_that_does_not_exist_is_not_found(server: Server) -> None:
    server.define("w", task("a", "simple"))
    with pytest.raises(ServerError) as raised:
        server.call("stop", workflow="typo")
    assert raised.value.data["kind"] == "not_found"
    assert "does not exist" in refused(spa_ctl(server, "stop", "-w", "typo"), 1)
    with pytest.raises(ServerError) as raised:
        server.call("stop", workflow="w")
    assert raised.value.data["kind"] == "conflict"
    with pytest.raises(ServerError) as raised:
        server.call("set_status", workflow="w", task="typo", status="waiting")
    assert raised.value.data["kind"] == "not_found"
    with pytest.raises(ServerError) as raised:
        server.call("set_status", workflow="w", task="a", status="waiting")
    assert raised.value.data["kind"] == "conflict"


def test_logs_of_an_attempt_that_does_not_exist_is_not_found(server: Server) -> None:
    server.define("w", task("a", "error", "1", retries=2, retry_delay=0.05))
    server.call("run", workflow="w")
    server.wait_status("w", lambda s: s not in ("running", "stopping"))
    message = refused(spa_ctl(server, "logs", "-w", "w", "-t", "a", "-a", "9"), 1)
    assert "attempt 9" in message
    with pytest.raises(ServerError) as raised:
        server.call("logs", workflow="w", task="a", attempt=9)
    assert raised.value.data["kind"] == "not_found"


# 8. Text from tasks, alarms and the audit trail is printed as text.


def test_markup_and_control_characters_are_shown_as_text(server: Server) -> None:
    server.define("w", task("a", "simple", "[/bold]", "e\x1bx"))
    out = ok(server, "status", "-w", "w")
    assert "[/bold]" in out and "\x1b" not in out and "\\x1b" in out
    server.call(
        "signal_raise", source="s", kind="k", severity="warning", message="[/bold] \x1b[31m\x00"
    )
    wait_for(lambda: server.call("alarms_list")["alarms"], what="the alarm")
    out = ok(server, "alarms")
    assert "[/bold]" in out and "\x1b" not in out and "\x00" not in out


def test_a_file_name_cannot_forge_a_line_of_the_audit(server: Server) -> None:
    forged = "x\n2026-01-01T00:00:00.000Z  root   create   ok"
    body = b"data"
    request = urllib.request.Request(
        server.url + "/files/data/" + urllib.parse.quote(forged),
        data=body,
        method="PUT",
        headers={
            "Authorization": f"Bearer {server.token}",
            "X-Content-SHA256": hashlib.sha256(body).hexdigest(),
        },
    )
    try:
        urllib.request.urlopen(request, timeout=30).read()
    except urllib.error.HTTPError as exc:
        exc.read()
    details = [e["detail"] or "" for e in server.call("audit")["entries"]]
    assert any("\n2026-01-01" in detail for detail in details), details
    out = ok(server, "audit")
    assert not any(line.startswith("2026-01-01T00:00:00") for line in out.splitlines())
