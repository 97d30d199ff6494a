"""``GET /metrics``: Prometheus text format 0.0.4, built from the store at scrape time.

Labels name projects, workflows, tasks, statuses, alarm states and severities, never a run id,
an attempt or a pid: those would make a new series at every run. Each family is one query;
"the latest run of each workflow" is a ``max(id)`` per workflow on the ``runs_by_workflow`` index.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

from spad import procs

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATEST = (
    "SELECT w.id AS workflow_id, w.name AS workflow, p.name AS project, r.id AS run_id,"
    " coalesce(r.status, 'not run') AS status, r.finished, r.runner_pid, r.runner_identity"
    " FROM workflows w JOIN projects p ON p.id = w.project_id"
    " LEFT JOIN runs r ON r.id = (SELECT max(id) FROM runs WHERE workflow_id = w.id)"
)
_TASKS = (
    "SELECT p.name AS project, w.name AS workflow, t.name AS task,"
    " coalesce(rt.status, 'not run') AS status, rt.attempt, rt.exit_code"
    " FROM tasks t JOIN workflows w ON w.id = t.workflow_id JOIN projects p ON p.id = w.project_id"
    " LEFT JOIN run_tasks rt ON rt.name = t.name"
    "  AND rt.run_id = (SELECT max(id) FROM runs WHERE workflow_id = w.id)"
    " ORDER BY p.name, w.name, t.place"
)
_ALARMS = "SELECT state, severity, count(*) FROM alarms GROUP BY state, severity"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: object) -> str:
    inner = ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())
    return "{" + inner + "}"


class _Family:
    """One metric family: its HELP, TYPE and samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        self.name = name

    def add(self, value: float, **labels: object) -> None:
        number = repr(float(value)) if isinstance(value, float) else str(value)
        self.lines.append(f"{self.name}{_labels(**labels) if labels else ''} {number}")


def resident_memory() -> int:
    """This process's resident set, in bytes (``/proc/self/statm``, second field)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def render(conn: sqlite3.Connection, version: str) -> bytes:
    families = [
        *_server(version),
        *_workflow_families(conn.execute(_LATEST).fetchall()),
        *_task_families(conn.execute(_TASKS).fetchall()),
        _alarms(conn.execute(_ALARMS).fetchall()),
    ]
    return ("\n".join(line for f in families for line in f.lines) + "\n").encode()


def _server(version: str) -> list[_Family]:
    up = _Family("spad_up", "gauge", "1 while spad answers.")
    up.add(1)
    build = _Family("spad_build_info", "gauge", "spad's version, as a label.")
    build.add(1, version=version)
    memory = _Family(
        "process_resident_memory_bytes", "gauge", "Resident memory of the spad server."
    )
    memory.add(resident_memory())
    return [up, build, memory]


def _workflow_families(rows: Iterable[sqlite3.Row]) -> list[_Family]:
    by_status = _Family("spad_workflows", "gauge", "Workflows by the status of their latest run.")
    running = _Family(
        "spad_workflow_running", "gauge", "1 when the workflow's latest run is unfinished."
    )
    runners = _Family("spad_runners", "gauge", "Runner processes alive.")
    counts: dict[tuple[str, str], int] = {}
    alive = 0
    for row in rows:
        key = (row["project"], row["status"])
        counts[key] = counts.get(key, 0) + 1
        unfinished = row["run_id"] is not None and row["finished"] == 0
        running.add(int(unfinished), project=row["project"], workflow=row["workflow"])
        if unfinished and procs.is_alive(row["runner_pid"], row["runner_identity"]):
            alive += 1
    for (project, status), count in sorted(counts.items()):
        by_status.add(count, project=project, status=status)
    runners.add(alive)
    return [by_status, running, runners]


def _task_families(rows: Iterable[sqlite3.Row]) -> list[_Family]:
    by_status = _Family("spad_tasks", "gauge", "Tasks of each workflow's latest run, by status.")
    restarts = _Family(
        "spad_task_restarts_total", "counter", "Restarts of the task in its workflow's latest run."
    )
    exit_codes = _Family(
        "spad_task_last_exit_code", "gauge", "Exit code of the task's last ended attempt."
    )
    counts: dict[tuple[str, str, str], int] = {}
    for row in rows:
        project, workflow, task = row["project"], row["workflow"], row["task"]
        key = (project, workflow, row["status"])
        counts[key] = counts.get(key, 0) + 1
        labels = {"project": project, "workflow": workflow, "task": task}
        restarts.add(max((row["attempt"] or 0) - 1, 0), **labels)
        if row["exit_code"] is not None:
            exit_codes.add(row["exit_code"], **labels)
    for (project, workflow, status), count in counts.items():
        by_status.add(count, project=project, workflow=workflow, status=status)
    return [by_status, restarts, exit_codes]


def _alarms(rows: Iterable[sqlite3.Row]) -> _Family:
    family = _Family("spad_alarms", "gauge", "Alarms by state and severity.")
    for state, severity, count in rows:
        family.add(count, state=state, severity=severity)
    return family
