"""Stop and its escalation, waiting tasks, immortal ones, and hard ends of the runner."""

from __future__ import annotations

import os
import signal
import time

import pytest

from spad import procs
from spad.cli.client import ServerError
from tests.conftest import Server, task, tree, wait_for


def runner_pid(server: Server, workflow: str) -> int:
    run_id = server.status(workflow)["run_id"]
    row = server.db().execute("SELECT runner_pid FROM runs WHERE id = ?", (run_id,)).fetchone()
    return int(row[0])


def test_stop_is_graceful_then_escalates(server: Server) -> None:
    server.define(
        "w",
        task("soft", "simple", "60", exec="parallel", stop_timeout=5),
        task("hard", "stubborn", "60", stop_timeout=3),  # still stopping once soft stopped
    )
    server.call("run", workflow="w")
    wait_for(lambda: all(t["status"] == "running" for t in server.status("w")["tasks"]))
    server.wait_trapped("w", "hard")
    started = time.monotonic()
    reply = server.call("stop", workflow="w")
    assert reply["status"] == "stopping"
    assert server.status("w")["status"] == "stopping"
    server.wait_task("w", "soft", "stopped")
    assert server.task("w", "hard")["status"] == "stopping"
    state = server.wait_status("w", "stopped")
    elapsed = time.monotonic() - started
    assert [t["status"] for t in state["tasks"]] == ["stopped", "killed"]
    assert 2.9 < elapsed < 10, f"SIGKILL came {elapsed:.2f}s after the stop (stop_timeout 3s)"
    server.no_process_left()


def test_force_stop_kills_at_once(server: Server) -> None:
    server.define("w", task("hard", "stubborn", "60", stop_timeout=60))
    server.call("run", workflow="w")
    server.wait_task("w", "hard", "running")
    started = time.monotonic()
    server.call("stop", workflow="w", force=True)
    state = server.wait_status("w", "stopped")
    assert time.monotonic() - started < 30  # stop_timeout is 60 s
    assert state["tasks"][0]["status"] == "killed"
    server.no_process_left()


def test_stop_without_project_finds_the_workflow_or_asks(server: Server) -> None:
    server.define("w", task("a", "simple", "60"))
    server.call(
        "create", **tree([{"name": "w", "tasks": [task("a", "simple", "60")]}], project="other")
    )
    server.call("run", project="pr1", workflow="w")
    assert server.call("stop", workflow="w")["project"] == "pr1"
    server.wait_status("w", "stopped")
    server.call("run", project="pr1", workflow="w")
    server.call("run", project="other", workflow="w")
    with pytest.raises(ServerError, match="give -p PROJECT"):
        server.call("stop", workflow="w")
    for project in ("pr1", "other"):
        server.call("stop", project=project, workflow="w", force=True)
        server.wait_status("w", "stopped", project=project)


def test_a_waiting_task_is_left_alone_until_it_runs_again(server: Server) -> None:
    # It keeps running once it is running again: only the stop can end it, so `stopped` proves
    # that the stop reached it then, and not before.
    server.script(
        "pause",
        'set -e\nspa_ctl set_status -s waiting\nsleep "$1"\n'
        "spa_ctl set_status -s running\nexec sleep 3600\n",
    )
    server.define("w", task("t", "pause", "4", stop_timeout=5))
    server.call("run", workflow="w")
    server.wait_task("w", "t", "waiting")
    waiting_since = time.monotonic()
    server.call("stop", workflow="w")
    time.sleep(0.3)  # a negative check: a wrong stop would show by now; the task still waits
    assert server.task("w", "t")["status"] == "waiting"
    state = server.wait_status("w", "stopped")
    assert state["tasks"][0]["status"] == "stopped"
    # It waited its 4 s out: it was stopped only once it was running again.
    assert time.monotonic() - waiting_since > 3.5


def test_a_forced_stop_does_not_wait_for_a_waiting_task(server: Server) -> None:
    server.define("w", task("t", "wait", "60"))
    server.call("run", workflow="w")
    server.wait_task("w", "t", "waiting")
    server.call("stop", workflow="w", force=True)
    assert server.wait_status("w", "stopped")["tasks"][0]["status"] == "killed"


def test_immortal_is_watched_until_it_dies(make_server) -> None:
    server = make_server(SPAD_TEST_NO_KILL="1").start()
    server.define("w", task("t", "stubborn", "60", stop_timeout=0.2))
    server.call("run", workflow="w")
    pid = server.wait_task("w", "t", "running")["pid"]
    server.wait_trapped("w", "t")
    server.call("stop", workflow="w")
    state = server.wait_status("w", "stopped")
    assert state["tasks"][0]["status"] == f"immortal({pid})"
    assert procs.identity(pid) is not None
    os.killpg(pid, signal.SIGKILL)  # what the kernel would do at last
    server.wait_task("w", "t", "killed")


def test_sigterm_to_the_runner_is_a_hard_stop_and_the_run_comes_back(server: Server) -> None:
    server.define("w", task("a", "simple", "60", exec="parallel"), task("b", "stubborn", "60"))
    first = server.call("run", workflow="w")["run_id"]
    wait_for(lambda: all(t["status"] == "running" for t in server.status("w")["tasks"]))
    pids = [t["pid"] for t in server.status("w")["tasks"]]
    os.kill(runner_pid(server, "w"), signal.SIGTERM)
    wait_for(
        lambda: all(procs.identity(p) is None for p in pids),
        timeout=10,
        what="the tasks to be killed",
    )
    # The old run's record is final once the new run exists (the tasks are gone a moment
    # before their runner recorded them killed).
    state = wait_for(lambda: (s := server.status("w"))["run_id"] != first and s, what="a new run")
    old = server.db().execute("SELECT status FROM runs WHERE id = ?", (first,)).fetchone()[0]
    assert old == "terminated(-15)"
    old_tasks = (
        server.db().execute("SELECT status FROM run_tasks WHERE run_id = ?", (first,)).fetchall()
    )
    assert {row[0] for row in old_tasks} == {"killed"}
    assert state["status"] == "running"
    server.call("stop", workflow="w", force=True)
    server.wait_status("w", "stopped")
    server.no_process_left()


def test_no_task_outlives_a_runner_killed_with_sigkill(server: Server) -> None:
    server.script("family", "sleep 60 &\nsleep 60\n")
    server.define("w", task("t", "family"))
    first = server.call("run", workflow="w")["run_id"]
    pid = server.wait_task("w", "t", "running")["pid"]
    wait_for(lambda: len(procs.group_members(pid)) == 3, what="the task and its two children")
    members = procs.group_members(pid)
    os.kill(runner_pid(server, "w"), signal.SIGKILL)
    wait_for(
        lambda: not any(procs.identity(p) for p in members),
        timeout=10,
        what="the task's processes to die with their runner",
    )
    state = wait_for(
        lambda: (s := server.status("w"))["run_id"] != first and s, what="the run to be resumed"
    )
    assert state["status"] == "running"
    server.call("stop", workflow="w", force=True)
    server.wait_status("w", "stopped")
    server.no_process_left()


def test_a_descendant_that_left_the_group_is_killed_too(server: Server) -> None:
    server.script("escaper", "trap '' TERM\nsetsid sleep 60 &\necho $! > escaped.pid\nsleep 60\n")
    server.define("w", task("t", "escaper", stop_timeout=0.5))
    server.call("run", workflow="w")
    pid_file = server.home / "data" / "escaped.pid"
    escaped = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    assert procs.identity(escaped) is not None
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")
    wait_for(lambda: procs.identity(escaped) is None, timeout=10, what="the escaped child to die")
    server.no_process_left()


def test_tasks_die_with_their_runner_even_when_the_server_is_down(server: Server) -> None:
    server.define("w", task("t", "simple", "60"))
    server.call("run", workflow="w")
    pid = server.wait_task("w", "t", "running")["pid"]
    runner = runner_pid(server, "w")
    assert server.process is not None
    server.process.kill()  # no server: no sweep; only the parent-death signal is left
    server.process.wait()
    os.kill(runner, signal.SIGKILL)
    wait_for(lambda: procs.identity(pid) is None, timeout=10, what="the task to die")
