"""The store's reads and writes of a run's runner: straight to their rows (with a thousand
workflows running, a read through all unfinished runs made each call cost a thousand), and one
runner per run however late a fork server answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from spad.store import runs
from tests.conftest import task
from tests.unit.engine_run import EngineRun


def test_a_workflows_unfinished_run_is_found_by_the_workflow(conn: sqlite3.Connection) -> None:
    said: list[str] = []
    conn.set_trace_callback(said.append)
    runs.unfinished(conn, 1)
    conn.set_trace_callback(None)
    [sql] = said
    plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
    assert any(
        "USING INDEX runs_unfinished_by_workflow (workflow_id=?)" in row[3] for row in plan
    ), plan


def test_the_server_does_not_record_its_runner_over_one_that_claimed_the_run(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    """A fork server that answered after the server gave up on it forked a runner that
    claimed the run; the server's own runner, started meanwhile, is then not recorded and
    cannot claim: the run keeps one runner."""
    run_id = EngineRun(conn, tmp_path / "home", task("a")).run_id
    assert runs.claim(conn, run_id, 1001, "boot:1")  # the late forked runner
    assert not runs.set_runner(conn, run_id, 1002, "boot:2")  # the server's fallback
    assert not runs.claim(conn, run_id, 1002, "boot:2")
    assert runs.get(conn, run_id)["runner_pid"] == 1001  # type: ignore[index]


def test_the_server_records_its_runner_before_it_claims(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    run_id = EngineRun(conn, tmp_path / "home", task("a")).run_id
    assert runs.set_runner(conn, run_id, 1002, "boot:2")
    assert runs.claim(conn, run_id, 1002, "boot:2")
