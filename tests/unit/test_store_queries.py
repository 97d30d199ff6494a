"""The reads every ``run`` and ``stop`` makes go straight to their rows: with a thousand
workflows running, a read through all unfinished runs made each call cost a thousand."""

from __future__ import annotations

import sqlite3

from spad.store import runs


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
