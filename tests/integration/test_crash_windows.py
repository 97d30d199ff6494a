"""The server killed in the narrow windows between two steps, hit every time by a test-only
crash point (``SPAD_TEST_CRASH_AT``, see :mod:`spad.faults`)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from spad import faults, procs
from spad.cli.client import Unreachable
from tests.conftest import DEADLINE, Server, runners_of, task, wait_for


def crashes(server: Server, method: str, **params: str) -> None:
    """``method`` kills the server on its way: the call gets no reply."""
    with pytest.raises(Unreachable):
        server.call(method, **params)
    assert server.process is not None
    assert server.process.wait(timeout=DEADLINE) == -signal.SIGKILL


def test_a_stop_recorded_just_before_a_crash_is_sent_by_the_next_server(
    make_server: Callable[..., Server],
) -> None:
    before = make_server(SPAD_TEST_CRASH_AT=faults.STOP_RECORDED).start()
    before.define("w", task("t", "stubborn", "60", stop_timeout=1))
    run_id = before.call("run", workflow="w")["run_id"]
    before.wait_trapped("w", "t")
    crashes(before, "stop", workflow="w")
    with contextlib.closing(before.db()) as conn:
        row = conn.execute("SELECT stop_request, status FROM runs").fetchone()
    assert tuple(row) == ("graceful", "stopping")

    after = make_server().start()
    # The adopted runner gets the stop and escalates: the stubborn task is killed after 1 s.
    state = after.wait_status("w", "stopped")
    assert state["run_id"] == run_id
    assert [t["status"] for t in state["tasks"]] == ["killed"]
    after.no_process_left()


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "exec"])
def test_a_runner_slow_to_start_refuses_the_run_superseded_meanwhile(
    make_server: Callable[..., Server], home: Path, forked: bool
) -> None:
    ways = {} if forked else {"SPAD_TEST_NO_FORKSERVER": "1"}
    # The delay is the time the new server has to start and supersede the run: long enough
    # for a loaded machine.
    before = make_server(
        SPAD_TEST_CRASH_AT=faults.RUNNER_SPAWNED, SPAD_TEST_RUNNER_DELAY="8", **ways
    ).start()
    before.define("w", task("t", "simple", "60"))
    if forked:
        before.define_spare()  # with one workflow defined, runners start afresh
    crashes(before, "run", workflow="w")
    # Forked, it takes its name a moment after the fork server answered (and the server died).
    stale = wait_for(lambda: list(runners_of(home)), what="the runner started before the crash")
    assert len(stale) == 1, "one runner of run 1"

    after = make_server().start()
    state = wait_for(
        lambda: (s := after.status("w"))["run_id"] != 1 and s["tasks"][0]["pid"] and s,
        what="the workflow to run again as a new run",
    )
    with contextlib.closing(after.db()) as conn:
        superseded = dict(conn.execute("SELECT * FROM runs WHERE id = 1").fetchone())
        old_tasks = [dict(r) for r in conn.execute("SELECT * FROM run_tasks WHERE run_id = 1")]
    assert superseded["finished"] == 2

    # The late runner comes up, finds its run given up, and leaves without touching it.
    wait_for(lambda: not procs.is_alive(stale[0], procs.identity(stale[0])), what="it to leave")
    with contextlib.closing(after.db()) as conn:
        assert dict(conn.execute("SELECT * FROM runs WHERE id = 1").fetchone()) == superseded
        assert [
            dict(r) for r in conn.execute("SELECT * FROM run_tasks WHERE run_id = 1")
        ] == old_tasks
        unfinished = conn.execute("SELECT id FROM runs WHERE finished = 0").fetchall()
    assert [r[0] for r in unfinished] == [state["run_id"]]
    assert all(t["attempt"] == 0 and t["pid"] is None for t in old_tasks), "its tasks never ran"
    assert list(runners_of(home)) == [after_runner(after)]
    os.kill(state["tasks"][0]["pid"], 0)  # the one task of the one live run


def after_runner(server: Server) -> int:
    with contextlib.closing(server.db()) as conn:
        row = conn.execute("SELECT runner_pid FROM runs WHERE finished = 0").fetchone()
    return int(row[0])
