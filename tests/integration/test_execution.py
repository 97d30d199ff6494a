"""Runs with real processes: sequencing, environment, logs, retries, failure policies."""

from __future__ import annotations

import os
import signal

import pytest

from spad.cli.client import ServerError
from tests.conftest import Server, seed, task, tree, wait_for


def test_the_seed_workflows_run_to_success(server: Server) -> None:
    server.call("create", **seed())
    first = server.call("run", workflow="wf1")["run_id"]
    second = server.call("run", workflow="wf2")["run_id"]
    assert first != second
    for workflow in ("wf1", "wf2"):
        state = server.wait_status(workflow, "success0")
        assert {t["status"] for t in state["tasks"]} == {"success0"}
        assert all(t["exit_code"] == 0 and t["attempt"] == 1 for t in state["tasks"])
    assert server.call("logs", workflow="wf2", task="t21") == "hello from wf2\n"
    server.no_process_left()


def test_parallel_goes_on_at_once_and_await_waits(server: Server) -> None:
    server.define(
        "w",
        task("bg", "simple", "1", exec="parallel"),
        task("a", "simple", "0.3"),
        task("b", "simple", "0"),
    )
    server.call("run", workflow="w")
    state = server.wait_status("w", "success0")
    bg, a, b = state["tasks"]
    assert a["started_at"] < bg["ended_at"], "the await task did not wait for the background one"
    assert b["started_at"] >= a["ended_at"], "b started before the awaited a ended"
    run = (
        server.db().execute("SELECT ended_at FROM runs WHERE id = ?", (state["run_id"],)).fetchone()
    )
    assert run["ended_at"] >= bg["ended_at"], "the run ended before its background task"


def test_every_task_is_new_at_a_runs_start(server: Server) -> None:
    server.define("w", task("a", "simple", "30"), task("b", "simple", "0"))
    server.call("run", workflow="w")
    state = server.wait_status("w", "running")
    wait_for(lambda: server.task("w", "a")["status"] == "running")
    assert server.task("w", "b")["status"] == "new"
    server.call("stop", workflow="w", force=True)
    server.wait_status("w", "stopped")
    assert server.task("w", "b")["status"] == "not run"
    assert state["run_id"] is not None


def test_run_one_task_or_from_a_task(server: Server) -> None:
    server.define("w", task("a", "simple"), task("b", "simple"), task("c", "simple"))
    server.call("run", workflow="w", task="b")
    state = server.wait_status("w", "success0")
    assert [t["status"] for t in state["tasks"]] == ["not run", "success0", "not run"]
    server.call("run", workflow="w", **{"from": "b"})
    state = server.wait_status("w", lambda s: s == "success0" and True)
    state = wait_for(lambda: (s := server.status("w"))["tasks"][2]["status"] == "success0" and s)
    assert [t["status"] for t in state["tasks"]] == ["not run", "success0", "success0"]
    with pytest.raises(ServerError, match="does not exist"):
        server.call("run", workflow="w", task="zz")


def test_running_twice_is_a_conflict(server: Server) -> None:
    server.define("w", task("a", "simple", "30"))
    server.call("run", workflow="w")
    with pytest.raises(ServerError) as caught:
        server.call("run", workflow="w")
    assert caught.value.data["kind"] == "conflict" and "stop it first" in caught.value.message
    server.call("stop", workflow="w", force=True)
    server.wait_status("w", "stopped")


def test_a_missing_function_fails_the_run_before_anything_starts(server: Server) -> None:
    server.define("w", task("a", "simple", "30"), task("b", "nope"), task("c", "ghost"))
    with pytest.raises(ServerError) as caught:
        server.call("run", workflow="w")
    assert "ghost, nope" in caught.value.message and caught.value.data["kind"] == "invalid"
    assert server.status("w")["status"] == "not run"
    assert server.processes() == []


def test_a_task_gets_its_environment_its_own_group_and_data_as_cwd(server: Server) -> None:
    server.script(
        "envdump",
        'env | grep -E "^(SPA_|MY_)" | sort\npwd\n'
        'echo "pid=$$ pgid=$(cut -d" " -f5 /proc/$$/stat)"\n',
    )
    server.define("w", task("t", "envdump", env={"MY_VAR": "42"}))
    run_id = server.call("run", workflow="w")["run_id"]
    server.wait_status("w", "success0")
    text = server.call("logs", workflow="w", task="t")
    for line in (
        "SPA_PROJECT=pr1",
        "SPA_WORKFLOW=w",
        "SPA_TASK=t",
        f"SPA_RUN_ID={run_id}",
        "SPA_ATTEMPT=1",
        f"SPA_URL={server.url}",
        f"SPA_TOKEN={server.token}",
        f"SPA_HOME={server.home}",
        "MY_VAR=42",
        str(server.home / "data"),
    ):
        assert line in text.splitlines(), line
    pid, pgid = (part.split("=")[1] for part in text.splitlines()[-1].split())
    assert pid == pgid


def test_a_task_starts_with_no_signal_ignored_or_blocked(server: Server) -> None:
    """The runner ignores SIGPIPE (Python does) and handles others: a task inherits none of it,
    so `producer | head` ends as it does from a shell."""
    server.script("signals", "exec grep -E '^Sig(Ign|Blk)' /proc/self/status\n")
    server.define("w", task("t", "signals"))
    server.call("run", workflow="w")
    server.wait_status("w", "success0")
    text = server.call("logs", workflow="w", task="t")
    assert text.split() == ["SigBlk:", "0" * 16, "SigIgn:", "0" * 16]


def test_stdout_and_stderr_are_logged_in_order_one_file_per_attempt(server: Server) -> None:
    server.script("chatty", "for i in 1 2 3; do echo out$i; echo err$i >&2; done\nexit 4\n")
    server.define("w", task("t", "chatty", retries=1, retry_delay=0.1))
    server.call("run", workflow="w")
    server.wait_status("w", "error(4)")
    expected = "out1\nerr1\nout2\nerr2\nout3\nerr3\n"
    assert server.call("logs", workflow="w", task="t", attempt=1) == expected
    assert server.call("logs", workflow="w", task="t") == expected
    assert server.call("logs", workflow="w", task="t", tail=2) == "out3\nerr3\n"
    logs = sorted(p.name for p in (server.home / "logs" / "pr1").rglob("*.log"))
    assert logs == ["t.1.log", "t.2.log"]


def test_a_failing_task_is_restarted_then_ends_in_error(server: Server) -> None:
    server.define("w", task("t", "error", "3", retries=1, retry_delay=1))
    server.call("run", workflow="w")
    server.wait_task("w", "t", "rerun")
    state = server.wait_status("w", "error(3)")
    assert (
        state["tasks"][0]["status"],
        state["tasks"][0]["attempt"],
        state["tasks"][0]["exit_code"],
    ) == ("error(3)", 2, 3)


def test_an_outside_signal_is_terminated(server: Server) -> None:
    server.define("w", task("t", "simple", "60", retries=0))
    server.call("run", workflow="w")
    pid = server.wait_task("w", "t", "running")["pid"]
    os.kill(pid, signal.SIGKILL)
    state = server.wait_status("w", "terminated(-9)")
    assert state["tasks"][0]["status"] == "terminated(-9)"
    assert state["tasks"][0]["exit_code"] == -9


def test_retries_without_end(server: Server) -> None:
    server.define("w", task("t", "error", "1", retries=-1, retry_delay=0.05))
    server.call("run", workflow="w")
    wait_for(lambda: (server.task("w", "t")["attempt"] or 0) >= 4, what="a fourth attempt")
    assert server.status("w")["status"] == "running"
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")


def test_on_failure_stop_stops_the_others(server: Server) -> None:
    server.define(
        "w",
        task("bg", "simple", "60", exec="parallel", stop_timeout=2),
        task("bad", "error", "5", retries=0),
        task("never", "simple"),
    )
    server.call("run", workflow="w")
    state = server.wait_status("w", "error(5)")
    assert [t["status"] for t in state["tasks"]] == ["stopped", "error(5)", "not run"]
    server.no_process_left()
    assert server.call("list")["projects"][0]["workflows"][0]["status"] == "error(5)"


def test_on_failure_continue_goes_on(server: Server) -> None:
    server.define(
        "w",
        task("bad", "error", "5", retries=0),
        task("next", "simple"),
        on_failure="continue",
    )
    server.call("run", workflow="w")
    state = server.wait_status("w", "error(5)")
    assert [t["status"] for t in state["tasks"]] == ["error(5)", "success0"]


def test_twenty_workflows_with_background_tasks_at_once(server: Server) -> None:
    workflows = [
        {
            "name": f"w{i}",
            "tasks": [task("bg", "simple", "60", exec="parallel"), task("fg", "simple", "60")],
        }
        for i in range(20)
    ]
    server.call("create", **tree(workflows))
    for i in range(20):
        server.call("run", workflow=f"w{i}")

    def all_running() -> bool:
        return all(
            all(t["status"] == "running" for t in server.status(f"w{i}")["tasks"])
            for i in range(20)
        )

    wait_for(all_running, timeout=60, what="40 tasks to run")
    for i in range(20):
        server.call("stop", workflow=f"w{i}")
    for i in range(20):
        server.wait_status(f"w{i}", "stopped")
    server.no_process_left()
