"""``GET /metrics``: Prometheus text format 0.0.4, built from the store at scrape time
(the queries are in :mod:`spad.store.metrics`).

Labels name projects, workflows, tasks, statuses, alarm states and severities, never a run id,
an attempt or a pid: those would make a new series at every run. "The latest run of each
workflow" is a ``max(id)`` per workflow on the ``runs_by_workflow`` index.
"""

from __future__ import annotations

import os
import sqlite3

from spad import procs
from spad.store import metrics as queries

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


HELP = {
    "spad_up": ("gauge", "1 while spad answers."),
    "spad_build_info": ("gauge", "spad's version, as a label."),
    "process_resident_memory_bytes": ("gauge", "Resident memory of the spad server."),
    "spad_workflows": ("gauge", "Workflows by the status of their latest run."),
    "spad_workflow_running": ("gauge", "1 when the workflow's latest run is unfinished."),
    "spad_runners": ("gauge", "Runner processes alive."),
    "spad_tasks": ("gauge", "Tasks of each workflow's latest run, by status."),
    "spad_task_restarts_total": ("counter", "Restarts of the task in its workflow's latest run."),
    "spad_task_last_exit_code": ("gauge", "Exit code of the task's last ended attempt."),
    "spad_task_memory_bytes": (
        "gauge",
        "Resident memory of a running local task's processes (read from /proc at the scrape).",
    ),
    "spad_alarms": ("gauge", "Alarms by state and severity."),
}


def resident_memory() -> int:
    """This process's resident set, in bytes (``/proc/self/statm``, second field)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def render(conn: sqlite3.Connection, version: str) -> bytes:
    """The scrape: two queries over the definitions and the latest runs (label values come
    escaped from SQLite), the alarms' counts, and the server's own numbers."""
    samples: dict[str, list[str]] = {name: [] for name in HELP}
    samples["spad_up"].append("spad_up 1")
    samples["spad_build_info"].append(f'spad_build_info{{version="{_escape(version)}"}} 1')
    samples["process_resident_memory_bytes"].append(
        f"process_resident_memory_bytes {resident_memory()}"
    )
    samples["spad_runners"].append(f"spad_runners {_runners(conn)}")
    _workflow_samples(conn, samples)
    _task_samples(conn, samples)
    for state, severity, count in queries.alarm_counts(conn):
        samples["spad_alarms"].append(
            f'spad_alarms{{state="{state}",severity="{severity}"}} {count}'
        )
    lines: list[str] = []
    for name, (kind, help_text) in HELP.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples[name]]
    return ("\n".join(lines) + "\n").encode()


def _workflow_samples(conn: sqlite3.Connection, samples: dict[str, list[str]]) -> None:
    counts: dict[tuple[str, str], int] = {}
    running = samples["spad_workflow_running"]
    for project, workflow, status, unfinished in queries.latest_workflows(conn):
        key = (project, status)
        counts[key] = counts.get(key, 0) + 1
        running.append(
            f'spad_workflow_running{{project="{project}",workflow="{workflow}"}} {unfinished}'
        )
    samples["spad_workflows"] += [
        f'spad_workflows{{project="{project}",status="{_escape(status)}"}} {count}'
        for (project, status), count in counts.items()
    ]


def _task_samples(conn: sqlite3.Connection, samples: dict[str, list[str]]) -> None:
    counts: dict[tuple[str, str], int] = {}
    restarts, exit_codes = samples["spad_task_restarts_total"], samples["spad_task_last_exit_code"]
    memory = samples["spad_task_memory_bytes"]
    for workflow, task, status, attempt, exit_code, pid, identity in queries.latest_tasks(conn):
        key = (workflow, status)
        counts[key] = counts.get(key, 0) + 1
        labels = f'{workflow},task="{task}"'
        restarts.append(f"spad_task_restarts_total{{{labels}}} {max(attempt - 1, 0)}")
        if exit_code is not None:
            exit_codes.append(f"spad_task_last_exit_code{{{labels}}} {exit_code}")
        if pid is not None and procs.is_alive(pid, identity):
            memory.append(f"spad_task_memory_bytes{{{labels}}} {procs.resident_bytes(pid)}")
    samples["spad_tasks"] += [
        f'spad_tasks{{{workflow},status="{_escape(status)}"}} {count}'
        for (workflow, status), count in counts.items()
    ]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _runners(conn: sqlite3.Connection) -> int:
    """Runners alive: those of unfinished runs whose process is still the one recorded."""
    rows = queries.unfinished_runners(conn)
    return sum(procs.is_alive(pid, identity) for pid, identity in rows)
