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
from spad.home import Home
from spad.server.runners import Runners
from spad.store import definitions as defs
from spad.store import runs
from tests.conftest import task, tree


def a_stopped_run_to_restart(conn: sqlite3.Connection) -> int:
    catalog.create(conn, parse_spec(tree([{"name": "w", "tasks": [task("t", "simple")]}])))
    project = defs.project(conn, "pr1")
    assert project is not None
    workflow = defs.workflow(conn, project["id"], "w")
    assert workflow is not None
    run_id = transitions.create_run(conn, workflow["id"], ["t"])
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
    assert runs.restart_asked(conn, run_id)  # for the next try
    assert len(runs.history(conn, run["workflow_id"], 10)) == 1
