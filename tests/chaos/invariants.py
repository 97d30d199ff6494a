"""What must hold in a home after any fault, read from spa.db and /proc.

Each check returns the breaches it found, as sentences; an empty list is a sound home.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from spad import procs
from tests.conftest import home_processes, runners_of

#: Task statuses that claim a live process.
SHOWN_LIVE = ("running", "stopping", "waiting")


def groups() -> dict[int, list[int]]:
    """Every live process group and its members, from one pass over /proc."""
    members: dict[int, list[int]] = defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{name}/stat").read_text()
            fields = text[text.rfind(")") + 2 :].split()
            if fields[0] != "Z":
                members[int(fields[2])].append(int(name))
    return members


def describe(pid: int, variables: dict[str, str]) -> str:
    """``pid (sleep 3600) of task fg, run 12``, for a breach's sentence."""
    with contextlib.suppress(OSError):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        variables = {**variables, "command": command.decode(errors="replace")[:60]}
    return (
        f"{pid} ({variables.get('command', '?')}) of task {variables.get('SPA_TASK', '-')}, "
        f"run {variables.get('SPA_RUN_ID', '-')}"
    )


def task_left(task: sqlite3.Row, live_groups: dict[int, list[int]]) -> bool:
    """A process of this task still runs (its group, unless its pid now leads another)."""
    pid, recorded = task["pid"], task["pid_identity"]
    if not pid or not recorded:
        return False
    current = procs.identity(pid)
    if current is not None and current != recorded:
        return False  # the pid was recycled: not ours
    return current == recorded or bool(live_groups.get(pid))


def check(conn: sqlite3.Connection, home: Path, stopping: set[int]) -> list[str]:
    conn.execute("BEGIN")  # one snapshot of runs and their tasks
    runs = {r["id"]: r for r in conn.execute("SELECT * FROM runs")}
    tasks: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for row in conn.execute("SELECT * FROM run_tasks"):
        tasks[row["run_id"]].append(row)
    conn.execute("COMMIT")
    return [
        *one_runner_each(runs, set(runners_of(home))),
        *tasks_as_shown(runs, tasks),
        *nothing_outlives_its_run(runs, home_processes(home)),
        *stops_kept(runs, stopping),
    ]


def one_runner_each(runs: dict[int, sqlite3.Row], runners: set[int]) -> list[str]:
    """Every unfinished workflow has exactly one live runner: its run's recorded runner, alive,
    and no other runner process of the home (one still ending its finished run aside)."""
    breaches = []
    unfinished = [run for run in runs.values() if run["finished"] == 0]
    per_workflow = Counter(run["workflow_id"] for run in unfinished)
    for run in unfinished:
        if not procs.is_alive(run["runner_pid"], run["runner_identity"]):
            breaches.append(f"run {run['id']} is unfinished without a live runner")
        if per_workflow[run["workflow_id"]] > 1:
            breaches.append(f"run {run['id']}'s workflow has several unfinished runs")
    for pid in runners - {run["runner_pid"] for run in unfinished}:
        breaches.append(f"runner {pid} runs, and is no unfinished run's runner")
    return breaches


def tasks_as_shown(runs: dict[int, sqlite3.Row], tasks: dict[int, list[sqlite3.Row]]) -> list[str]:
    """A task shown running has a live process, a dead one is never shown running, and no
    process of a task outlives its run."""
    breaches = []
    live_groups = groups()
    for run_id, rows in tasks.items():
        finished = runs[run_id]["finished"] != 0
        for task in rows:
            where = f"task {task['name']} of run {run_id}"
            if task["status"] in SHOWN_LIVE and (
                finished or not procs.is_alive(task["pid"], task["pid_identity"])
            ):
                breaches.append(f"{where} is shown {task['status']} but its process is gone")
            if finished and task_left(task, live_groups):
                breaches.append(f"{where} has a process alive after its run ended")
    return breaches


def nothing_outlives_its_run(
    runs: dict[int, sqlite3.Row], processes: dict[int, dict[str, str]]
) -> list[str]:
    """No process a run's tasks started (found by its environment, recorded or not: a runner
    killed before it wrote a task's pid, a child that left its task's group) is alive once the
    run ended, was superseded or deleted."""
    breaches = []
    newest = max(runs, default=0)  # a run made since the snapshot is not judged by it
    for pid, variables in processes.items():
        text = variables.get("SPA_RUN_ID", "")
        run_id = int(text) if text.isdigit() else None
        if run_id is None or run_id > newest:
            continue
        if run_id not in runs or runs[run_id]["finished"] != 0:  # (retention deletes old runs)
            breaches.append(f"process {describe(pid, variables)} outlives its run")
    return breaches


def stops_kept(runs: dict[int, sqlite3.Row], stopping: set[int]) -> list[str]:
    """A workflow that was stopping ends stopped and is not resumed; none is resumed twice."""
    breaches = []
    resumed = Counter(r["resumed_from"] for r in runs.values() if r["resumed_from"])
    for run_id in stopping & set(runs):  # (retention deletes a workflow's oldest runs)
        run = runs[run_id]
        if (run["status"], run["finished"]) != ("stopped", 1):
            breaches.append(f"run {run_id} was stopping and is {run['status']} ({run['finished']})")
        if resumed[run_id]:
            breaches.append(f"run {run_id} was stopping and was resumed")
    for run_id, count in resumed.items():
        if count > 1:
            breaches.append(f"run {run_id} was resumed {count} times")
    return breaches


def finished_records(conn: sqlite3.Connection) -> dict[int, Any]:
    """The record of every finished (or superseded) run: its row and its tasks' rows."""
    records: dict[int, Any] = {}
    for run in conn.execute("SELECT * FROM runs WHERE finished != 0"):
        rows = conn.execute(
            "SELECT * FROM run_tasks WHERE run_id = ? ORDER BY place", (run["id"],)
        ).fetchall()
        records[run["id"]] = (tuple(run), [tuple(r) for r in rows])
    return records
