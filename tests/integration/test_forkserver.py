"""Runners forked by the fork server: what they share, what happens when it dies, and the
fallback to a fresh interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from spad import procs
from tests.conftest import Server, comm, forkserver_pids, task, wait_for


def runner_of(server: Server, run_id: int) -> int:
    row = server.db().execute("SELECT runner_pid FROM runs WHERE id = ?", (run_id,)).fetchone()
    return int(row[0])


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def test_runners_are_forked_by_the_forkserver_and_outlive_the_server(
    make_server: Callable[..., Server],
) -> None:
    server = make_server().start()
    server.define("w", task("fg", "simple", "60"))
    server.define_spare()
    run_id = server.call("run", workflow="w")["run_id"]
    server.wait_task("w", "fg", "running")
    [forkserver] = forkserver_pids(server.home)
    assert server.process is not None
    assert parent_of(forkserver) == server.process.pid
    runner = runner_of(server, run_id)
    assert parent_of(runner) == forkserver
    assert comm(runner) == "spad-runner"
    assert os.getsid(runner) == runner  # a session of its own, as a spawned runner has

    server.stop(signal.SIGKILL)  # the fork server dies with the server; the runner goes on
    wait_for(lambda: not forkserver_pids(server.home), what="the fork server to end")
    assert procs.is_alive(runner, procs.identity(runner))
    server.start()
    assert server.status("w")["run_id"] == run_id  # adopted, not resumed
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")


def test_a_dead_forkserver_is_replaced_at_the_next_run(server: Server) -> None:
    server.define("a", task("t", "simple", "0"))
    server.define_spare()
    server.call("run", workflow="a")
    server.wait_status("a", "success0")
    [first] = forkserver_pids(server.home)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: first not in forkserver_pids(server.home), what="the fork server to end")
    server.call("run", workflow="a")
    server.wait_status("a", "success0")
    [second] = forkserver_pids(server.home)
    assert second != first


def test_one_workflow_has_fresh_runners_and_a_second_brings_the_forkserver(
    server: Server,
) -> None:
    """A fork server pays off from its second runner: with one workflow defined each runner
    is a fresh interpreter (3 MiB less, as quick to start as the fork server would be)."""
    server.define("w", task("fg", "simple", "60"))
    first = server.call("run", workflow="w")["run_id"]
    server.wait_task("w", "fg", "running")
    assert not forkserver_pids(server.home)
    with open(f"/proc/{runner_of(server, first)}/cmdline", "rb") as handle:
        assert b"spad.runner\0" in handle.read()
    server.define_spare()
    server.call("run", workflow="spare")
    server.wait_status("spare", "success0")
    [forkserver] = forkserver_pids(server.home)
    runner = runner_of(server, server.status("spare")["run_id"])
    assert runner != runner_of(server, first)
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")
    assert forkserver_pids(server.home) == [forkserver]  # it stays, whatever runs next


@pytest.mark.parametrize("run_id", ["\N{SUPERSCRIPT TWO}", "x", ""])
def test_a_runner_started_by_hand_with_no_run_id_says_how_to_start_it(
    tmp_path: Path, run_id: str
) -> None:
    said = subprocess.run(
        [sys.executable, "-m", "spad.runner", str(tmp_path), run_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (said.returncode, said.stderr) == (2, "usage: python -m spad.runner HOME RUN_ID\n")


def test_without_the_forkserver_runners_start_as_fresh_interpreters(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(SPAD_TEST_NO_FORKSERVER="1").start()
    server.define("w", task("fg", "simple", "60"))
    run_id = server.call("run", workflow="w")["run_id"]
    server.wait_task("w", "fg", "running")
    assert not forkserver_pids(server.home)
    runner = runner_of(server, run_id)
    with open(f"/proc/{runner}/cmdline", "rb") as handle:
        assert b"spad.runner\0" in handle.read()
    assert comm(runner) == "spad-runner"  # named as a forked one is
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")


def locks_held_by(pid: int) -> list[str]:
    """The lines of /proc/locks that name ``pid`` (SQLite takes POSIX locks, which do)."""
    with open("/proc/locks") as handle:
        return [line for line in handle if line.split()[4] == str(pid)]


def test_an_idle_runner_holds_no_lock_on_the_store_and_opens_it_again_to_stop(
    server: Server,
) -> None:
    """A thousand idle runners holding their connections made every lock call on spa.db walk a
    thousand locks: an idle runner closes its connection, and opens it again when woken."""
    server.define("w", task("fg", "simple", "60"))
    run_id = server.call("run", workflow="w")["run_id"]
    server.wait_task("w", "fg", "running")
    runner = runner_of(server, run_id)
    wait_for(lambda: not locks_held_by(runner), what="the idle runner to let go of spa.db")
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")
