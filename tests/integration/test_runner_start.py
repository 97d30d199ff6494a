"""The server's runner starter: the fork server is started with the runners' environment and
kept while runs ask for that one; a run that asks for another gets a new fork server."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from spad import home as layout
from spad import procs
from spad.server.runner_start import RunnerStarter
from spad.store.sqlite import connect, migrate
from tests.conftest import procs_with, wait_for


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / layout.LOGS).mkdir()
    conn = connect(tmp_path / layout.DB)
    migrate(conn)
    conn.close()
    return tmp_path


def forkserver(starter: RunnerStarter) -> int:
    pid = starter.forkserver_pid
    assert pid is not None
    return pid


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as handle:
        pairs = [item.split(b"=", 1) for item in handle.read().split(b"\0") if item]
    return {key.decode(): value.decode() for key, value in pairs}


def runner_said(home: Path, run_id: int) -> bool:
    """A forked runner for a run that does not exist says so in runners.log, and ends."""
    text = (home / layout.LOGS / layout.RUNNERS_LOG).read_text()
    return f"run {run_id} is finished, superseded or another runner's" in text


def test_one_forkserver_per_environment(home: Path) -> None:
    starter = RunnerStarter(home, home / layout.LOGS / layout.RUNNERS_LOG, lambda: 2)
    env = dict(os.environ, SPAD_TEST_MARK="one")
    try:
        _, child = starter.start(901, env)
        assert child is None  # forked, not a fresh interpreter
        first = forkserver(starter)
        first_identity = procs.identity(first)
        assert environ_of(first) == env  # what its runners are forked with
        wait_for(lambda: runner_said(home, 901), what="the first runner to start")

        starter.start(902, dict(env))
        assert forkserver(starter) == first
        wait_for(lambda: runner_said(home, 902), what="the second runner to start")

        other = dict(env, SPAD_TEST_MARK="two")
        starter.start(903, other)
        second = forkserver(starter)
        assert second != first and environ_of(second) == other
        assert not procs.is_alive(first, first_identity)  # it ended when this one started
        wait_for(lambda: runner_said(home, 903), what="the third runner to start")
    finally:
        starter.close()
    wait_for(lambda: not procs_with(f"spad.runner.forkserver {home} "), what="no fork server")


@pytest.mark.parametrize(("defined", "forked"), [(0, False), (1, False), (2, True)])
def test_runners_are_forked_from_two_workflows_defined_on(
    home: Path, defined: int, forked: bool
) -> None:
    starter = RunnerStarter(home, home / layout.LOGS / layout.RUNNERS_LOG, lambda: defined)
    child = None
    try:
        _, child = starter.start(905, dict(os.environ))
        assert (child is None) == forked  # a Popen: a fresh interpreter, our child
        assert (starter.forkserver_pid is not None) == forked
        wait_for(lambda: runner_said(home, 905), what="the runner to start")
    finally:
        starter.close()
        if child is not None:
            child.wait(timeout=30)


def test_a_runners_log_that_cannot_be_opened_starts_runners_all_the_same(home: Path) -> None:
    """A folder where runners.log goes (a project of that name once made one) made every
    start fail, the run resumed for ever."""
    (home / layout.LOGS / layout.RUNNERS_LOG).mkdir()
    starter = RunnerStarter(home, home / layout.LOGS / layout.RUNNERS_LOG, lambda: 2)
    try:
        pid, _ = starter.start(904, dict(os.environ))
        identity = procs.identity(pid)
        assert pid > 0
    finally:
        starter.close()
    wait_for(lambda: not procs.is_alive(pid, identity), what="the runner of no run to end")


def test_a_store_that_cannot_count_workflows_still_gets_a_fork_server(home: Path) -> None:
    """The count only sets the rehearsal's length: a store that cannot give it (busy, damaged)
    must not keep a run from its runner."""

    def cannot_count() -> int:
        raise sqlite3.OperationalError("database is locked")

    starter = RunnerStarter(home, home / layout.LOGS / layout.RUNNERS_LOG, cannot_count)
    try:
        _, child = starter.start(905, dict(os.environ))
        assert child is None  # forked by a fork server, not started as a fresh interpreter
        wait_for(lambda: runner_said(home, 905), what="the runner to start")
        said = (home / layout.LOGS / layout.RUNNERS_LOG).read_text()
        assert "(workflows defined: 0)" in said  # the one-run rehearsal
    finally:
        starter.close()
    wait_for(lambda: not procs_with(f"spad.runner.forkserver {home} "), what="no fork server")
