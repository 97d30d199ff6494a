"""The restarts asked of runs (``runs.then_restart``, set with the stop request): kept in spa.db
with the run, so that a restart of spad before the run ended still starts the workflow again;
taken by the workflow's next run, whoever asked for it; called off by a later stop. The
server's alone (the runner never reads them)."""

from __future__ import annotations

import sqlite3

TYPE_CHECKING = False
if TYPE_CHECKING:
    from spad.store.sqlite import Statements

Row = sqlite3.Row


def restart_asked(conn: Statements, run_id: int) -> bool:
    """Whether a restart asked of ``run_id`` is still to take (a row read before may be
    stale)."""
    row = conn.execute("SELECT then_restart FROM runs WHERE id = ?", (run_id,)).fetchone()
    return bool(row and row[0])


def restart_taken(conn: Statements, run_id: int) -> None:
    """The restart asked of ``run_id`` is taken: it is asked no more."""
    conn.execute("UPDATE runs SET then_restart = 0 WHERE id = ?", (run_id,))


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


def restarts_asked(conn: Statements) -> list[Row]:
    """Finished runs whose restart was asked and not yet taken (the server was down as they
    ended)."""
    rows: list[Row] = conn.execute(
        "SELECT * FROM runs WHERE finished = 1 AND then_restart = 1"
    ).fetchall()
    return rows
