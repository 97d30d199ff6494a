"""The queries behind ``GET /metrics``: each workflow's latest run, its tasks, the unfinished
runs' runners and the alarms, with label values already escaped by SQLite as Prometheus' text
format asks."""

from __future__ import annotations

import sqlite3
from typing import Any


def _esc(column: str) -> str:
    """SQL that escapes a label value as the text format asks (backslash, quote, newline)."""
    return f"replace(replace(replace({column}, '\\', '\\\\'), '\"', '\\\"'), char(10), '\\n')"


_LATEST_RUN = "(SELECT max(id) FROM runs WHERE workflow_id = w.id)"  # on runs_by_workflow
#: Each workflow: its labels (escaped by SQLite), its latest run's status and whether it is
#: unfinished.
_WORKFLOWS = (
    f"SELECT {_esc('p.name')} AS project, {_esc('w.name')} AS workflow,"
    " coalesce(r.status, 'not run') AS status, coalesce(r.finished = 0, 0) AS unfinished"
    " FROM workflows w JOIN projects p ON p.id = w.project_id"
    f" LEFT JOIN runs r ON r.id = {_LATEST_RUN} ORDER BY p.name, w.name"
)
#: Each task of each workflow, as in the workflow's latest run (``not run`` when it has none).
_TASKS = (
    f'SELECT printf(\'project="%s",workflow="%s"\', {_esc("p.name")}, {_esc("w.name")}),'
    f" {_esc('t.name')}, coalesce(rt.status, 'not run'), coalesce(rt.attempt, 0), rt.exit_code,"
    " CASE WHEN rt.ended_at IS NULL AND rt.pid > 0 THEN rt.pid END, rt.pid_identity"
    " FROM tasks t JOIN workflows w ON w.id = t.workflow_id JOIN projects p ON p.id = w.project_id"
    f" LEFT JOIN run_tasks rt ON rt.run_id = {_LATEST_RUN} AND rt.name = t.name"
    " ORDER BY p.name, w.name, t.place"
)
_UNFINISHED = "SELECT runner_pid, runner_identity FROM runs WHERE finished = 0"
_ALARMS = (
    f"SELECT {_esc('state')}, {_esc('severity')}, count(*) FROM alarms GROUP BY state, severity"
)


def latest_workflows(conn: sqlite3.Connection) -> list[Any]:
    """(project, workflow, status of the latest run, 1 if it is unfinished) per workflow."""
    return conn.execute(_WORKFLOWS).fetchall()


def latest_tasks(conn: sqlite3.Connection) -> list[Any]:
    """(workflow's labels, task, status, attempt, exit code, pid while it runs locally, its
    identity) per task, from its latest run."""
    return conn.execute(_TASKS).fetchall()


def unfinished_runners(conn: sqlite3.Connection) -> list[Any]:
    """(runner pid, its identity) of every unfinished run."""
    return conn.execute(_UNFINISHED).fetchall()


def alarm_counts(conn: sqlite3.Connection) -> list[Any]:
    """(state, severity, count) of the alarms."""
    return conn.execute(_ALARMS).fetchall()
