"""The restarts asked of runs (``runs.then_restart``, set with the stop request): kept in spa.db
with the run, so that a restart of spad before the run ended still starts the workflow again;
taken by the workflow's next run, whoever asked for it; called off by a later stop. The
server's alone (the runner never reads them)."""

from __future__ import annotations

from sqlite3 import Row
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a protocol for the type checker alone
    from spad.store.sqlite import Statements

_ASKED = (
    "SELECT *, workflow_name AS workflow, project_name AS project FROM runs"
    " WHERE finished = 1 AND then_restart = 1"
)


def restart_asked(conn: Statements, run_id: int) -> bool:
    """Whether a restart asked of ``run_id`` is still to take (a row read before may be
    stale)."""
    row = conn.execute("SELECT then_restart FROM runs WHERE id = ?", (run_id,)).fetchone()
    return bool(row and row[0])


def asked(conn: Statements, workflow_id: int | None = None) -> list[Row]:
    """Ended runs whose restart is asked and not yet taken, with their project and workflow
    names: the server starts each as it handles the end of the run's runner, a moment after
    the runner recorded it (or at its own start, when it was down then)."""
    if workflow_id is None:
        rows: list[Row] = conn.execute(_ASKED).fetchall()
    else:
        rows = conn.execute(_ASKED + " AND workflow_id = ?", (workflow_id,)).fetchall()
    return rows


def taken(conn: Statements, workflow_id: int) -> None:
    """The restarts asked of the workflow's ended runs are taken (a new run starts) or called
    off: they are asked no more."""
    conn.execute(
        "UPDATE runs SET then_restart = 0 WHERE workflow_id = ? AND finished = 1"
        " AND then_restart = 1",
        (workflow_id,),
    )
