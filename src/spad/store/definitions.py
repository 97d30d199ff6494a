"""Queries on the definitions: projects, workflows, tasks, and the current project."""

from __future__ import annotations

import json
import sqlite3

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

Row = sqlite3.Row


def project(conn: sqlite3.Connection, name: str) -> Row | None:
    row: Row | None = conn.execute("SELECT * FROM projects WHERE name = ?", (name,)).fetchone()
    return row


def projects(conn: sqlite3.Connection) -> list[Row]:
    return conn.execute("SELECT * FROM projects ORDER BY name").fetchall()


def max_project_ext_id(conn: sqlite3.Connection) -> int:
    """The highest project ext_id, 0 without projects."""
    return int(conn.execute("SELECT coalesce(max(ext_id), 0) FROM projects").fetchone()[0])


def insert_project(conn: sqlite3.Connection, name: str, ext_id: int) -> int:
    cursor = conn.execute("INSERT INTO projects (ext_id, name) VALUES (?, ?)", (ext_id, name))
    return int(cursor.lastrowid or 0)


def set_project_ext_id(conn: sqlite3.Connection, project_id: int, ext_id: int) -> None:
    conn.execute("UPDATE projects SET ext_id = ? WHERE id = ?", (ext_id, project_id))


def workflow(conn: sqlite3.Connection, project_id: int, name: str) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM workflows WHERE project_id = ? AND name = ?", (project_id, name)
    ).fetchone()
    return row


def workflows(conn: sqlite3.Connection, project_id: int) -> list[Row]:
    return conn.execute(
        "SELECT * FROM workflows WHERE project_id = ? ORDER BY ext_id, id", (project_id,)
    ).fetchall()


def workflow_count(conn: sqlite3.Connection) -> int:
    """Workflows defined, in every project."""
    return int(conn.execute("SELECT count(*) FROM workflows").fetchone()[0])


def max_workflow_ext_id(conn: sqlite3.Connection, project_id: int) -> int:
    """The highest ext_id of the project's workflows, 0 without workflows."""
    sql = "SELECT coalesce(max(ext_id), 0) FROM workflows WHERE project_id = ?"
    return int(conn.execute(sql, (project_id,)).fetchone()[0])


def insert_workflow(
    conn: sqlite3.Connection,
    project_id: int,
    name: str,
    ext_id: int,
    on_failure: str,
    executor: str = "local",
) -> int:
    cursor = conn.execute(
        "INSERT INTO workflows (project_id, ext_id, name, on_failure, executor)"
        " VALUES (?, ?, ?, ?, ?)",
        (project_id, ext_id, name, on_failure, executor),
    )
    return int(cursor.lastrowid or 0)


def update_workflow(
    conn: sqlite3.Connection,
    workflow_id: int,
    ext_id: int | None,
    on_failure: str | None,
    executor: str | None = None,
) -> None:
    conn.execute(
        "UPDATE workflows SET ext_id = coalesce(?, ext_id), on_failure = coalesce(?, on_failure),"
        " executor = coalesce(?, executor) WHERE id = ?",
        (ext_id, on_failure, executor, workflow_id),
    )


def delete_workflow(conn: sqlite3.Connection, workflow_id: int) -> None:
    conn.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))


def tasks(conn: sqlite3.Connection, workflow_id: int) -> list[Row]:
    return conn.execute(
        "SELECT * FROM tasks WHERE workflow_id = ? ORDER BY place", (workflow_id,)
    ).fetchall()


def task(conn: sqlite3.Connection, workflow_id: int, name: str) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM tasks WHERE workflow_id = ? AND name = ?", (workflow_id, name)
    ).fetchone()
    return row


def task_order(conn: sqlite3.Connection, workflow_id: int) -> list[Row]:
    """A workflow's tasks in order, with only what a change of them needs (id, ext_id, name,
    place)."""
    return conn.execute(
        "SELECT id, ext_id, name, place FROM tasks WHERE workflow_id = ? ORDER BY place, id",
        (workflow_id,),
    ).fetchall()


def max_task_ext_id(conn: sqlite3.Connection, project_id: int) -> int:
    """The highest ext_id of the project's tasks, 0 without tasks."""
    sql = (
        "SELECT coalesce(max(t.ext_id), 0) FROM tasks t JOIN workflows w ON w.id = t.workflow_id"
        " WHERE w.project_id = ?"
    )
    return int(conn.execute(sql, (project_id,)).fetchone()[0])


def insert_task(
    conn: sqlite3.Connection, workflow_id: int, fields: dict[str, Any], place: int
) -> int:
    """Insert a task (``fields["id"]``: its ext_id) at ``place``; its id.

    Nothing else moves: the caller keeps the workflow's places 1..n (:func:`set_places`), once
    per command rather than once per task."""
    cursor = conn.execute(
        "INSERT INTO tasks (workflow_id, ext_id, name, place, exec, function, params, retries,"
        " retry_delay, stop_signal, stop_timeout, env, cwd, timeout, idle_timeout, memory_max,"
        " executor, slurm_args)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            workflow_id,
            fields["id"],
            fields["name"],
            place,
            fields["exec"],
            fields["function"],
            json.dumps(fields["params"]),
            fields["retries"],
            fields["retry_delay"],
            fields["stop_signal"],
            fields["stop_timeout"],
            json.dumps(fields["env"], sort_keys=True),
            fields["cwd"],
            fields["timeout"],
            fields["idle_timeout"],
            fields["memory_max"],
            fields.get("executor"),
            json.dumps(fields.get("slurm_args") or []),
        ),
    )
    return int(cursor.lastrowid or 0)


def delete_task(conn: sqlite3.Connection, task_id: int) -> None:
    conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))


def set_places(conn: sqlite3.Connection, places: Iterable[tuple[int, int]]) -> None:
    """Write ``(place, task id)`` pairs."""
    conn.executemany("UPDATE tasks SET place = ? WHERE id = ?", places)


def task_as_dict(row: Row) -> dict[str, Any]:
    """A task row in the seed's format, every field filled in."""
    return {
        "id": row["ext_id"],
        "name": row["name"],
        "place": row["place"],
        "exec": row["exec"],
        "function": row["function"],
        "params": json.loads(row["params"]),
        "retries": row["retries"],
        "retry_delay": row["retry_delay"],
        "stop_signal": row["stop_signal"],
        "stop_timeout": row["stop_timeout"],
        "env": json.loads(row["env"]),
        "cwd": row["cwd"],
        "timeout": row["timeout"],
        "idle_timeout": row["idle_timeout"],
        "memory_max": row["memory_max"],
        "executor": row["executor"],
        "slurm_args": json.loads(row["slurm_args"]),
    }


def current_project(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = 'current_project'").fetchone()
    return str(row["value"]) if row else None


def set_current_project(conn: sqlite3.Connection, name: str) -> None:
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('current_project', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (name,),
    )


def workflow_by_id(conn: sqlite3.Connection, workflow_id: int) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM workflows WHERE id = ?", (workflow_id,)
    ).fetchone()
    return row


def names_of_workflow(conn: sqlite3.Connection, workflow_id: int) -> tuple[str, str] | None:
    """``(project, workflow)`` names of a workflow id, or None when it was deleted."""
    row = conn.execute(
        "SELECT p.name, w.name FROM workflows w JOIN projects p ON p.id = w.project_id"
        " WHERE w.id = ?",
        (workflow_id,),
    ).fetchone()
    return (row[0], row[1]) if row else None


def workflows_named(conn: sqlite3.Connection, name: str) -> list[Row]:
    """Every workflow called ``name``, in any project."""
    return conn.execute("SELECT * FROM workflows WHERE name = ?", (name,)).fetchall()
