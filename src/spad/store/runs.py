"""Queries on runs and their tasks. Standard library only: the runner writes through these."""

from __future__ import annotations

import sqlite3
import time

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from spad.store.sqlite import Statements

Row = sqlite3.Row

#: ``runs.finished``: 0 unfinished (to be resumed), 1 finished, 2 cut short and resumed
#: as a newer run.
UNFINISHED, FINISHED, SUPERSEDED = 0, 1, 2

RUN_TASK_COPY = (
    "place, name, exec, function, params, retries, retry_delay, stop_signal, stop_timeout, env,"
    " cwd, timeout, idle_timeout, memory_max, slurm_args"
)
#: A task's executor: its own, else its workflow's.
_EXECUTOR = "coalesce(executor, (SELECT executor FROM workflows WHERE id = workflow_id), 'local')"


def now() -> str:
    """ISO 8601 UTC with milliseconds, as every time in spad is written (``time``, not
    ``datetime``: one import less for every runner)."""
    return iso(time.time())


def iso(seconds: float) -> str:
    """``seconds`` since the epoch as spad writes times; such texts sort as the times do."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int(seconds * 1000) % 1000:03d}Z"


def in_seconds(seconds: float) -> str:
    """The time ``seconds`` from now, as spad writes times."""
    return iso(time.time() + seconds)


def create(
    conn: sqlite3.Connection,
    workflow_id: int,
    selected: list[str],
    only_task: str | None = None,
    from_task: str | None = None,
    resumed_from: int | None = None,
) -> int:
    """A new run: the workflow's tasks copied, ``new`` for the selected ones, ``not run`` else."""
    # The names are the run's own: its events carry them without a join (see migration 12).
    names = conn.execute(
        "SELECT p.name, w.name FROM workflows w JOIN projects p ON p.id = w.project_id"
        " WHERE w.id = ?",
        (workflow_id,),
    ).fetchone()
    project, workflow = names if names else (None, None)
    cursor = conn.execute(
        "INSERT INTO runs (workflow_id, status, only_task, from_task, resumed_from, started_at,"
        " project_name, workflow_name) VALUES (?, 'running', ?, ?, ?, ?, ?, ?)",
        (workflow_id, only_task, from_task, resumed_from, now(), project, workflow),
    )
    run_id = int(cursor.lastrowid or 0)
    marks = ",".join("?" * len(selected)) or "NULL"
    conn.execute(
        f"INSERT INTO run_tasks (run_id, {RUN_TASK_COPY}, executor, status, project_name,"
        f" workflow_name) SELECT ?, {RUN_TASK_COPY}, {_EXECUTOR},"
        f" CASE WHEN name IN ({marks}) THEN 'new' ELSE 'not run' END, ?, ?"
        " FROM tasks WHERE workflow_id = ?",
        (run_id, *selected, project, workflow, workflow_id),
    )
    return run_id


def claim(conn: sqlite3.Connection, run_id: int, pid: int, identity: str | None) -> bool:
    """The runner ``pid`` takes its run: only an unfinished run that no other runner holds and
    that the server has not given up (see :func:`disown`). False: leave the run alone."""
    cursor = conn.execute(
        "UPDATE runs SET runner_pid = ?, runner_identity = ?"
        " WHERE id = ? AND finished = 0 AND (runner_pid IS NULL OR runner_pid = ?)",
        (pid, identity, run_id, pid),
    )
    return cursor.rowcount > 0


#: ``runs.runner_pid`` of a run the server has given up on: no runner can claim it any more.
DISOWNED = 0


def disown(conn: Statements, run_id: int) -> None:
    """The server found no live runner: from now on none may claim the run (a runner started
    just before a crash of the server, and slow to come up, refuses it)."""
    conn.execute("UPDATE runs SET runner_pid = ? WHERE id = ?", (DISOWNED, run_id))


def get(conn: Statements, run_id: int) -> Row | None:
    row: Row | None = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return row


def with_names(conn: Statements, run_id: int) -> Row | None:
    """The run with its workflow's ``on_failure`` and the names of its project and workflow."""
    row: Row | None = conn.execute(
        "SELECT r.*, w.name AS workflow, w.on_failure, p.name AS project FROM runs r"
        " JOIN workflows w ON w.id = r.workflow_id JOIN projects p ON p.id = w.project_id"
        " WHERE r.id = ?",
        (run_id,),
    ).fetchone()
    return row


def latest(conn: Statements, workflow_id: int) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM runs WHERE workflow_id = ? ORDER BY id DESC LIMIT 1", (workflow_id,)
    ).fetchone()
    return row


_UNFINISHED = (
    "SELECT r.*, w.name AS workflow, p.name AS project FROM runs r"
    " JOIN workflows w ON w.id = r.workflow_id JOIN projects p ON p.id = w.project_id"
    " WHERE r.finished = 0"
)


def unfinished(conn: Statements, workflow_id: int | None = None) -> list[Row]:
    """Runs not finished, with their project and workflow names."""
    if workflow_id is None:
        return conn.execute(_UNFINISHED + " ORDER BY r.id").fetchall()
    return conn.execute(_UNFINISHED + " AND r.workflow_id = ?", (workflow_id,)).fetchall()


def tasks(conn: Statements, run_id: int) -> list[Row]:
    return conn.execute(
        "SELECT * FROM run_tasks WHERE run_id = ? ORDER BY place", (run_id,)
    ).fetchall()


def waiting_tasks(conn: Statements, run_id: int) -> set[str]:
    """Names of the run's tasks that set themselves ``waiting``."""
    rows = conn.execute(
        "SELECT name FROM run_tasks WHERE run_id = ? AND status = 'waiting'", (run_id,)
    ).fetchall()
    return {row["name"] for row in rows}


def live_task_pids(conn: Statements, run_id: int) -> list[tuple[int, str | None]]:
    """``(pid, identity)`` of the run's tasks whose attempt has not ended."""
    rows = conn.execute(
        "SELECT pid, pid_identity FROM run_tasks WHERE run_id = ? AND pid > 0 AND ended_at IS NULL",
        (run_id,),
    ).fetchall()
    return [(int(row["pid"]), row["pid_identity"]) for row in rows]


def record_heartbeat(conn: Statements, run_id: int, name: str, at: float) -> None:
    """A running task said it is alive at ``at`` (seconds since the epoch)."""
    conn.execute(
        "UPDATE run_tasks SET heartbeat_at = ? WHERE run_id = ? AND name = ?", (at, run_id, name)
    )


def heartbeat_at(conn: Statements, run_id: int, name: str) -> float:
    """When the task last said it is alive (0: never)."""
    row = conn.execute(
        "SELECT heartbeat_at FROM run_tasks WHERE run_id = ? AND name = ?", (run_id, name)
    ).fetchone()
    return float(row["heartbeat_at"] or 0.0) if row else 0.0


def task(conn: Statements, run_id: int, name: str) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM run_tasks WHERE run_id = ? AND name = ?", (run_id, name)
    ).fetchone()
    return row


# -- named writes: a status only through :mod:`spad.transitions` -------------------------------


def set_runner(conn: sqlite3.Connection, run_id: int, pid: int, identity: str | None) -> bool:
    """The process the server started for the run (its identity: see :mod:`spad.procs`),
    unless another runner claimed the run first: a fork server that answered too late may
    have forked one after the server started another, and the run has one runner, the first
    (the other's :func:`claim` then fails and it leaves). False: not recorded."""
    cursor = conn.execute(
        "UPDATE runs SET runner_pid = ?, runner_identity = ?"
        " WHERE id = ? AND (runner_pid IS NULL OR runner_pid = ?)",
        (pid, identity, run_id, pid),
    )
    return cursor.rowcount > 0


def request_stop(conn: Statements, run_id: int, mode: str, then_restart: bool = False) -> None:
    """Record a stop request (``transitions.GRACEFUL`` or ``FORCED``) before it is signalled;
    ``then_restart``: the workflow starts again once the run ended (a later stop calls it off)."""
    conn.execute(
        "UPDATE runs SET stop_request = ?, then_restart = ? WHERE id = ?",
        (mode, int(then_restart), run_id),
    )


def supersede(conn: Statements, run_id: int) -> None:
    """The run was cut short and is resumed as a newer run: its record is final."""
    conn.execute("UPDATE runs SET finished = ? WHERE id = ?", (SUPERSEDED, run_id))


def mark_stopping(conn: Statements, run_id: int) -> None:
    conn.execute("UPDATE runs SET status = 'stopping' WHERE id = ?", (run_id,))


def end(conn: Statements, run_id: int, status: str, finished: bool) -> None:
    """The run ended with ``status``: for good (``finished``), or to be resumed."""
    conn.execute(
        "UPDATE runs SET status = ?, finished = ?, ended_at = ? WHERE id = ?",
        (status, FINISHED if finished else UNFINISHED, now(), run_id),
    )


def task_launched(
    conn: Statements,
    run_id: int,
    name: str,
    status: str,
    pid: int | None,
    identity: str | None,
    attempt: int,
    log_path: str,
) -> None:
    """An attempt started; a task that already set itself ``waiting`` stays so."""
    conn.execute(
        "UPDATE run_tasks SET status = CASE WHEN status = 'waiting' THEN status ELSE ? END,"
        " pid = ?, pid_identity = ?, attempt = ?, exit_code = NULL, started_at = ?,"
        " ended_at = NULL, end_reason = NULL, log_path = ? WHERE run_id = ? AND name = ?",
        (status, pid, identity, attempt, now(), log_path, run_id, name),
    )


def task_not_started(
    conn: Statements,
    run_id: int,
    name: str,
    status: str,
    attempt: int,
    exit_code: int,
    log_path: str,
) -> None:
    """An attempt that could not start: started and ended at once, with 126 or 127."""
    at = now()
    conn.execute(
        "UPDATE run_tasks SET status = ?, pid = NULL, pid_identity = NULL, attempt = ?,"
        " exit_code = ?, started_at = ?, ended_at = ?, log_path = ?"
        " WHERE run_id = ? AND name = ?",
        (status, attempt, exit_code, at, at, log_path, run_id, name),
    )


def task_ended(
    conn: Statements,
    run_id: int,
    name: str,
    status: str,
    exit_code: int,
    reason: str | None = None,
) -> None:
    """An attempt ended; ``reason`` when spad knows why beyond its status ("memory limit")."""
    conn.execute(
        "UPDATE run_tasks SET status = ?, exit_code = ?, ended_at = ?, end_reason = ?"
        " WHERE run_id = ? AND name = ?",
        (status, exit_code, now(), reason, run_id, name),
    )


def task_closed(conn: Statements, run_id: int, name: str, status: str) -> None:
    """A task recorded as over without an exit code of its own (swept, or an immortal that
    died); an end already recorded is kept."""
    conn.execute(
        "UPDATE run_tasks SET status = ?, ended_at = COALESCE(ended_at, ?)"
        " WHERE run_id = ? AND name = ?",
        (status, now(), run_id, name),
    )


def task_retrying(
    conn: Statements, run_id: int, name: str, status: str, next_attempt_at: str
) -> None:
    """A failed task waits for its next attempt, due at ``next_attempt_at``."""
    conn.execute(
        "UPDATE run_tasks SET status = ?, next_attempt_at = ? WHERE run_id = ? AND name = ?",
        (status, next_attempt_at, run_id, name),
    )


def set_task_status(conn: Statements, run_id: int, name: str, status: str) -> None:
    conn.execute(
        "UPDATE run_tasks SET status = ? WHERE run_id = ? AND name = ?", (status, run_id, name)
    )


def set_task_status_if(
    conn: Statements, run_id: int, name: str, status: str, expected: str
) -> bool:
    """Change a task's status only if it is still ``expected``; True when it changed (on a
    connection: inside a runner's turn the write is kept, and this says False)."""
    cursor = conn.execute(
        "UPDATE run_tasks SET status = ? WHERE run_id = ? AND name = ? AND status = ?",
        (status, run_id, name, expected),
    )
    return cursor.rowcount > 0


def uses_executor(conn: Statements, workflow_id: int, executor: str) -> bool:
    """Whether a task of the workflow would run with ``executor``."""
    row = conn.execute(
        f"SELECT 1 FROM tasks WHERE workflow_id = ? AND {_EXECUTOR} = ? LIMIT 1",
        (workflow_id, executor),
    ).fetchone()
    return row is not None


def run_uses_executor(conn: Statements, run_id: int, executor: str) -> bool:
    """Whether a task of the run runs with ``executor``."""
    row = conn.execute(
        "SELECT 1 FROM run_tasks WHERE run_id = ? AND executor = ? LIMIT 1", (run_id, executor)
    ).fetchone()
    return row is not None


def set_task_job(conn: Statements, run_id: int, name: str, job: str | None) -> None:
    """The scheduler's id of the task's current job (not a status: no transition)."""
    conn.execute("UPDATE run_tasks SET job = ? WHERE run_id = ? AND name = ?", (job, run_id, name))


def unsettled_slurm_runs(conn: Statements, active: tuple[str, ...]) -> list[int]:
    """Runs whose runner is gone (finished or resumed) with a Slurm task still in one of
    ``active``: a settling of their jobs was cut short."""
    marks = ",".join("?" * len(active))
    rows = conn.execute(
        "SELECT DISTINCT t.run_id FROM run_tasks t JOIN runs r ON r.id = t.run_id"
        f" WHERE r.finished != 0 AND t.executor = 'slurm' AND t.status IN ({marks})",
        active,
    ).fetchall()
    return [row[0] for row in rows]


def immortal_tasks(conn: Statements) -> list[Row]:
    """Tasks that outlived SIGKILL and have not been seen to die yet."""
    return conn.execute(
        "SELECT * FROM run_tasks WHERE status LIKE 'immortal(%' AND ended_at IS NULL"
    ).fetchall()


_STATUS_FIELDS = (
    "'name', name, 'place', place, 'exec', exec, 'function', function, 'params', json(params)"
)


def status_rows_json(
    conn: Statements,
    workflow_id: int,
    run: Row | None,
    defined_since: bool = True,
    memory: str | None = None,
) -> str:
    """The rows of ``status`` as one JSON array, built by SQLite (a status of 300 tasks is
    read many times a second): the run's tasks, then (``defined_since``) those defined since,
    as ``not run``. A task that has not changed status since the run began is in it since the
    run's start. ``memory``: a JSON object, live task pid -> resident bytes (None: not asked,
    each task's ``memory`` is null)."""
    # The items are joined as text: json_group_array(json(item)) parsed each item again (a
    # subquery's column loses its JSON subtype), a third of the query's time at 300 tasks.
    row = conn.execute(
        "SELECT '[' || coalesce(group_concat(item, ','), '') || ']' FROM ("
        f" SELECT json_object({_STATUS_FIELDS}, 'status', status, 'pid', pid,"
        "  'attempt', attempt, 'exit_code', exit_code, 'started_at', started_at,"
        "  'ended_at', ended_at, 'restarts', max(attempt - 1, 0),"
        "  'since', coalesce(since, :run_start), 'next_attempt_at', next_attempt_at,"
        "  'memory', CASE WHEN :memory IS NOT NULL"
        "   THEN json_extract(:memory, '$.\"' || pid || '\"') END,"
        "  'executor', executor, 'job', job) AS item,"
        "  0 AS part, place FROM run_tasks WHERE run_id = :run_id"
        " UNION ALL"
        f" SELECT json_object({_STATUS_FIELDS}, 'status', 'not run', 'pid', NULL,"
        "  'attempt', NULL, 'exit_code', NULL, 'started_at', NULL, 'ended_at', NULL,"
        "  'restarts', 0, 'since', NULL, 'next_attempt_at', NULL, 'memory', NULL,"
        f"  'executor', {_EXECUTOR}, 'job', NULL),"
        "  1, place FROM tasks WHERE workflow_id = :workflow_id AND :defined_since"
        "  AND name NOT IN (SELECT name FROM run_tasks WHERE run_id = :run_id)"
        " ORDER BY part, place)",
        {
            "run_start": run["started_at"] if run else None,
            "memory": memory,
            "run_id": run["id"] if run else None,
            "workflow_id": workflow_id,
            "defined_since": int(defined_since),
        },
    ).fetchone()
    return str(row[0])


def overview(conn: Statements, project_id: int) -> list[Row]:
    """Each workflow of a project with its latest run and that run's restarts, in one query
    (``list`` of a thousand workflows is one statement, not two thousand)."""
    return conn.execute(
        "SELECT w.name, r.id AS run_id, r.status, r.started_at, r.ended_at,"
        " (SELECT coalesce(sum(max(t.attempt - 1, 0)), 0) FROM run_tasks t"
        "  WHERE t.run_id = r.id) AS restarts"
        " FROM workflows w"
        " LEFT JOIN runs r ON r.id = (SELECT max(id) FROM runs WHERE workflow_id = w.id)"
        " WHERE w.project_id = ? ORDER BY w.ext_id, w.id",
        (project_id,),
    ).fetchall()


def history(conn: Statements, workflow_id: int, limit: int) -> list[Row]:
    """A workflow's runs, newest first."""
    return conn.execute(
        "SELECT * FROM runs WHERE workflow_id = ? ORDER BY id DESC LIMIT ?", (workflow_id, limit)
    ).fetchall()


def ended_by(run: Row) -> str | None:
    """How a run ended: ``finished`` (its list ended by itself), ``stopped``, ``failed``,
    ``crashed`` (cut short and resumed as a newer run); None while it goes on."""
    if run["finished"] == SUPERSEDED:
        return "crashed"
    if run["finished"] != FINISHED:
        return None
    if run["status"] == "stopped":
        return "stopped"
    return "finished" if run["status"] == "success0" else "failed"


def older_than_newest(conn: Statements, workflow_id: int, keep: int) -> list[int]:
    """Runs of a workflow beyond its newest ``keep``, except unfinished ones (they will be
    resumed) and those a newer unfinished run was resumed from."""
    rows = conn.execute(
        "SELECT id FROM runs WHERE workflow_id = ? AND finished != 0"
        " AND id NOT IN (SELECT id FROM runs WHERE workflow_id = ? ORDER BY id DESC LIMIT ?)"
        " AND id NOT IN (SELECT resumed_from FROM runs WHERE finished = 0"
        "  AND resumed_from IS NOT NULL)",
        (workflow_id, workflow_id, keep),
    ).fetchall()
    return [row[0] for row in rows]


def delete(conn: Statements, run_ids: list[int]) -> None:
    marks = ",".join("?" * len(run_ids))
    conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", run_ids)
