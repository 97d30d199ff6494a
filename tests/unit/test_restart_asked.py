"""A restart asked of a run is taken in the transaction that makes the new run: a store that
refuses that transaction leaves it asked, for the server to try again (it was taken first, and
the workflow left stopped for good)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from spad import provision, transitions
from spad.definitions import catalog
from spad.definitions.model import parse_spec
from spad.errors import Conflict
from spad.home import Home
from spad.server import methods
from spad.server.params import parse
from spad.server.runners import Runners
from spad.server.service import Service
from spad.store import definitions as defs
from spad.store import restarts, runs
from tests.conftest import task, tree


def a_run_without_runner(conn: sqlite3.Connection) -> int:
    """A run ``running`` in spa.db whose runner is no more (dead and its end not handled yet,
    or cut short and waiting to be resumed)."""
    catalog.create(conn, parse_spec(tree([{"name": "w", "tasks": [task("t", "simple")]}])))
    project = defs.project(conn, "pr1")
    assert project is not None
    workflow = defs.workflow(conn, project["id"], "w")
    assert workflow is not None
    return transitions.create_run(conn, workflow["id"], ["t"])


def a_stopped_run_to_restart(conn: sqlite3.Connection) -> int:
    run_id = a_run_without_runner(conn)
    conn.execute(
        "UPDATE runs SET status = 'stopped', finished = 1, stop_request = 'graceful',"
        " then_restart = 1 WHERE id = ?",
        (run_id,),
    )
    return run_id


def test_a_restart_the_store_refuses_stays_asked(
    tmp_path: Path, conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    provision.prepare(Home(tmp_path))  # bin/simple, which the new run would start
    run_id = a_stopped_run_to_restart(conn)
    runners = Runners(Home(tmp_path), conn, url="http://127.0.0.1:1")

    def locked(*_: object) -> int:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(transitions, "create_run", locked)
    run = runs.get(conn, run_id)
    assert run is not None
    with pytest.raises(sqlite3.OperationalError):
        runners._start_again_if_asked(run)
    assert restarts.restart_asked(conn, run_id)  # for the next try
    assert len(runs.history(conn, run["workflow_id"], 10)) == 1


@pytest.mark.parametrize("project", ["pr1", None])
def test_a_stop_between_the_run_s_end_and_its_restart_calls_the_restart_off(
    tmp_path: Path, conn: sqlite3.Connection, project: str | None
) -> None:
    """The runner records the run's end, then exits; the server starts the restart as it
    handles that exit. A stop in between was refused ("not running: nothing to stop") and the
    workflow started again anyway."""
    provision.prepare(Home(tmp_path))
    run_id = a_stopped_run_to_restart(conn)
    runners = Runners(Home(tmp_path), conn, url="http://127.0.0.1:1")
    svc = Service(Home(tmp_path), conn, runners)
    answer = methods.stop(svc, parse(methods.StopParams, {"project": project, "workflow": "w"}))
    assert answer == {"project": "pr1", "workflow": "w", "run_id": run_id, "status": "stopped"}
    run = runs.get(conn, run_id)
    assert run is not None
    runners._start_again_if_asked(run)  # the runner's end, handled by the server
    assert [r["id"] for r in runs.history(conn, run["workflow_id"], 10)] == [run_id]
    with pytest.raises(Conflict, match="not running: nothing to stop"):
        methods.stop(svc, parse(methods.StopParams, {"project": project, "workflow": "w"}))


@pytest.mark.parametrize("method", ["run", "restart"])
def test_a_run_started_before_the_asked_restart_takes_it(
    tmp_path: Path,
    conn: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    """A `run` (or `restart`) in the same window starts the new run: the asked restart is
    taken by it. It was left asked, so a `stop` then found two runs ("runs in several
    projects") and the end's handling tried a second start, said as a failure."""
    provision.prepare(Home(tmp_path))
    ended = a_stopped_run_to_restart(conn)
    runners = Runners(Home(tmp_path), conn, url="http://127.0.0.1:1")
    monkeypatch.setattr(runners, "_spawn", lambda run_id: None)  # no runner: its run waits
    svc = Service(Home(tmp_path), conn, runners)
    params = {"project": "pr1", "workflow": "w"}
    if method == "run":
        new = methods.run(svc, parse(methods.RunParams, params))["run_id"]
    else:
        new = methods.restart(svc, parse(methods.WorkflowParams, params))["run_id"]
    assert not restarts.restart_asked(conn, ended)
    answer = methods.stop(svc, parse(methods.StopParams, params))
    assert (answer["run_id"], answer["status"]) == (new, "stopped")  # no runner to wait for
    run = runs.get(conn, ended)
    assert run is not None
    runners._start_again_if_asked(run)  # the ended runner's end, handled by the server
    assert [r["id"] for r in runs.history(conn, run["workflow_id"], 10)] == [new, ended]
    assert "could not start" not in caplog.text


def test_stop_and_restart_answer_what_they_did_when_no_runner_was_left(
    tmp_path: Path, conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no runner to signal, the run ends at once (and a restart starts at once): the
    answers said `stopping`, and `run_id` null with the new run already started."""
    provision.prepare(Home(tmp_path))
    runners = Runners(Home(tmp_path), conn, url="http://127.0.0.1:1")
    monkeypatch.setattr(runners, "_spawn", lambda run_id: None)
    svc = Service(Home(tmp_path), conn, runners)
    params = {"project": "pr1", "workflow": "w"}
    old = a_run_without_runner(conn)
    answer = methods.restart(svc, parse(methods.WorkflowParams, params))
    [new] = [run["id"] for run in runs.unfinished(conn)]
    assert (answer["stopping_run_id"], answer["run_id"]) == (old, new)
    conn.execute("UPDATE runs SET runner_pid = NULL WHERE id = ?", (new,))
    answer = methods.stop(svc, parse(methods.StopParams, params))
    assert (answer["run_id"], answer["status"]) == (new, "stopped")
    assert not runs.unfinished(conn)
