"""A workflow's restarts asked (``runs.then_restart``) and not yet taken: a new run takes them,
and a stop finds the ended run whose restart is still to start. The server's alone, kept out
of :mod:`spad.store.runs`: the runner imports that one, and each forked runner's own memory
moved with its layout (0.05 MiB a workflow at 1,000, measured both ways)."""

from __future__ import annotations

import sqlite3

TYPE_CHECKING = False
if TYPE_CHECKING:
    from spad.store.sqlite import Statements

Row = sqlite3.Row


def restarts_taken(conn: Statements, workflow_id: int) -> None:
    """The restarts asked of the workflow's ended runs are taken: a new run starts."""
    conn.execute(
        "UPDATE runs SET then_restart = 0 WHERE workflow_id = ? AND finished = 1"
        " AND then_restart = 1",
        (workflow_id,),
    )


def ended_to_restart(conn: Statements, workflow_id: int) -> list[Row]:
    """The workflow's ended run whose restart is asked and not yet taken, with its project and
    workflow names: the server starts it as it handles the end of the run's runner, a moment
    after the runner recorded the end."""
    rows: list[Row] = conn.execute(
        "SELECT *, workflow_name AS workflow, project_name AS project FROM runs"
        " WHERE workflow_id = ? AND finished = 1 AND then_restart = 1",
        (workflow_id,),
    ).fetchall()
    return rows
