"""No task outlives its runner: what a runner killed hard leaves behind is ended by the server,
recorded or not. Each test kills a runner at the moment a chaos cycle can only hit by chance.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spad import procs
from spad.server import leftovers
from tests.chaos.invariants import describe
from tests.conftest import Server, home_processes, task, wait_for

#: A task whose child leaves the task's process group (bash job control), not its session.
OWN_GROUP = "set -m\nsleep 3600 &\nwait\n"


def of_run(home: Path, run_id: int) -> dict[int, dict[str, str]]:
    return {
        pid: variables
        for pid, variables in home_processes(home).items()
        if variables.get("SPA_RUN_ID") == str(run_id)
    }


def with_a_child(home: Path, run_id: int) -> int | None:
    """The pid of a process of ``run_id`` that a task started (the task's child)."""
    for pid in of_run(home, run_id):
        children = procs.children(pid)
        if children:
            return children[0]
    return None


def runner_of(server: Server, run_id: int) -> int:
    with contextlib.closing(server.db()) as conn:
        row = conn.execute("SELECT runner_pid FROM runs WHERE id = ?", (run_id,)).fetchone()
    return int(row[0])


def none_left(home: Path, run_id: int) -> None:
    left: dict[int, dict[str, str]] = {}

    def gone() -> bool:
        left.clear()
        left.update(of_run(home, run_id))
        return not left

    try:
        wait_for(gone, timeout=15)
    except AssertionError:
        named = "; ".join(describe(pid, variables) for pid, variables in left.items())
        raise AssertionError(f"run {run_id} left processes behind: {named}") from None


@pytest.fixture(autouse=True)
def cleanup(home: Path) -> Iterator[None]:
    """What a failing test left (the processes the server did not end) ends here, after the
    servers' own clean-up (set up first, so torn down last)."""
    yield
    for pid in home_processes(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_task_its_runner_had_no_time_to_record_ends_with_what_it_started(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(SPAD_TEST_RECORD_DELAY="30").start()
    server.define("w", task("t", "simple", "3600"))
    run_id = server.call("run", workflow="w")["run_id"]
    child = wait_for(lambda: with_a_child(server.home, run_id), what="the task's sleep")
    assert server.task("w", "t")["pid"] is None  # started, not recorded
    os.kill(runner_of(server, run_id), signal.SIGKILL)
    none_left(server.home, run_id)
    assert procs.identity(child) is None
    wait_for(lambda: server.status("w")["run_id"] != run_id, what="the workflow to resume")


def test_a_child_that_left_its_tasks_group_ends_when_the_runner_is_killed(server: Server) -> None:
    server.script("own-group", OWN_GROUP)
    server.define("w", task("t", "own-group"))
    run_id = server.call("run", workflow="w")["run_id"]
    recorded = server.wait_task("w", "t", "running")["pid"]
    child = wait_for(lambda: with_a_child(server.home, run_id), what="the task's sleep")
    assert procs.group_members(recorded) == [recorded]  # the child is in a group of its own
    os.kill(runner_of(server, run_id), signal.SIGKILL)
    none_left(server.home, run_id)
    assert procs.identity(child) is None


def test_what_a_runner_left_while_no_server_ran_ends_at_the_next_start(
    make_server: Callable[..., Server],
) -> None:
    before = make_server().start()
    before.script("own-group", OWN_GROUP)
    before.define("w", task("t", "own-group"))
    run_id = before.call("run", workflow="w")["run_id"]
    recorded = before.wait_task("w", "t", "running")["pid"]
    child = wait_for(lambda: with_a_child(before.home, run_id), what="the task's sleep")
    assert before.process is not None
    before.process.kill()
    before.process.wait()
    os.kill(runner_of(before, run_id), signal.SIGKILL)
    wait_for(lambda: procs.identity(recorded) is None, what="the task to die with its runner")
    assert procs.identity(child) is not None  # its child lives on until a server ends it
    after = make_server().start()
    none_left(after.home, run_id)
    wait_for(lambda: after.status("w")["run_id"] != run_id, what="the workflow to resume")


def test_a_dead_sessions_processes_of_another_home_are_left_alone(tmp_path: Path) -> None:
    """A session id seen again after its pid was reused by someone else's session: only the
    processes started with this home's SPA_HOME are ended."""
    leader = subprocess.Popen(  # it leaves when its input closes: its identity is read first
        ["bash", "-c", "sleep 3600 & echo $!; read -r _"],
        env={**os.environ, "SPA_HOME": str(tmp_path / "other")},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdin is not None and leader.stdout is not None
    with leader.stdout:  # (the orphan holds its write end: read the line, not to the end)
        orphan = int(leader.stdout.readline())
    identity = procs.identity(leader.pid)
    assert identity is not None
    leader.stdin.close()
    leader.wait()
    try:
        assert procs.session_members({leader.pid}) == {leader.pid: [orphan]}
        assert leftovers.end_sessions(str(tmp_path / "home"), [(leader.pid, identity)]) == []
        assert procs.identity(orphan) is not None
        ended = leftovers.end_sessions(str(tmp_path / "other"), [(leader.pid, identity)])
        assert ended == [orphan]
        wait_for(lambda: procs.identity(orphan) is None, what="the orphan to end")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)
