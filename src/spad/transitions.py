"""The owner of every status change of a task or a workflow run.

Standard library only: the runner imports it on its hot path.

Nothing else writes a status. A change goes through :func:`move_task` or :func:`move_run`: the
move is looked up in a table of ``(from, event) -> allowed to``, an illegal one raises
:class:`IllegalTransition`, the write is a named operation of :mod:`spad.store.runs`, and
:func:`record_transition` is told of it (the one place where events for a live view are
appended). Statuses with a number (``error(3)``, ``immortal(4242)``) are matched by their kind.

What crosses processes as text (a stop request written by the server and read by the runner)
is a constant here too.

A new status (say ``queued``, for a job a scheduler has not started yet) is a constant in
:mod:`spad.states`, its rows in :data:`TASK_MOVES` (``NEW --launch--> queued``, ``queued
--end--> ...``), and, for a new event, a named store operation in :data:`_TASK_WRITERS`.
"""

from __future__ import annotations

import sqlite3

from spad import states
from spad.store import events, runs

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from typing import Any

    from spad.store.sqlite import Statements

# -- what crosses processes -----------------------------------------------------------------

#: ``runs.stop_request`` and the engine's stop modes: each task gets its stop signal, SIGKILL
#: at its stop_timeout; a waiting task is left alone until it runs again.
GRACEFUL = "graceful"
#: SIGKILL at once, waiting or not.
FORCED = "forced"
#: As graceful, after a task failed for good under ``on_failure: stop`` (the runner's own).
FAILURE = "failure"
#: What the server may write into ``runs.stop_request``.
STOP_REQUESTS = frozenset({GRACEFUL, FORCED})

# -- task events ----------------------------------------------------------------------------

#: An attempt's process was started.
LAUNCH = "launch"
#: An attempt could not start (exit code 126 or 127 recorded).
START_FAILED = "start_failed"
#: The attempt's process ended.
END = "end"
#: A failed task will be started again after its delay.
RETRY = "retry"
#: The stop signal (or, in a forced stop, SIGKILL) was sent.
STOP = "stop"
#: A stop ended the task between attempts, or before its first.
CANCEL = "cancel"
#: Still alive after SIGKILL: handed to the server to watch.
GIVE_UP = "give_up"
#: An immortal task's process was finally seen to die.
DIED = "died"
#: The task set itself ``waiting`` or back to ``running`` (``set_status``).
SET_WAITING = "set_waiting"
SET_RUNNING = "set_running"
#: Its runner died; the server records what the run left.
SWEEP = "sweep"
#: A queued job (Slurm) began to run.
STARTED = "started"
#: Its runner died and its job had ended by itself meanwhile: how it ended, recorded by the
#: server (a Slurm job keeps its exit status after its runner is gone).
SETTLE = "settle"

_ERROR, _TERMINATED, _IMMORTAL = "error", "terminated", "immortal"
_ENDED = frozenset({states.SUCCESS, _ERROR, _TERMINATED})
_FAILED = frozenset({_ERROR, _TERMINATED})
_BY_STOP = frozenset({states.STOPPED, states.KILLED})
_KILLED = frozenset({states.KILLED})
#: Stopped by spad for its ``timeout`` or ``idle_timeout``, down the same ladder.
_BY_STOP_OR_TIMEOUT = _BY_STOP | {states.TIMEOUT}

#: ``(kind of the current status, event) -> kinds it may move to``.
TASK_MOVES: dict[tuple[str, str], frozenset[str]] = {
    # NEW -> RUNNING | QUEUED, RERUN -> RUNNING | QUEUED (a job waiting for its scheduler)
    (states.NEW, LAUNCH): frozenset({states.RUNNING, states.QUEUED}),
    (states.RERUN, LAUNCH): frozenset({states.RUNNING, states.QUEUED}),
    # QUEUED -> RUNNING
    (states.QUEUED, STARTED): frozenset({states.RUNNING}),
    # NEW -> error(126|127)
    (states.NEW, START_FAILED): frozenset({_ERROR}),
    (states.RERUN, START_FAILED): frozenset({_ERROR}),
    # RUNNING -> success0 | error(N) | terminated(-N)
    (states.RUNNING, END): _ENDED,
    (states.WAITING, END): _ENDED,
    (states.QUEUED, END): _ENDED,
    # STOPPING -> STOPPED | KILLED
    (states.STOPPING, END): _BY_STOP_OR_TIMEOUT,
    # error(N) -> RERUN
    (_ERROR, RETRY): frozenset({states.RERUN}),
    (_TERMINATED, RETRY): frozenset({states.RERUN}),
    (states.TIMEOUT, RETRY): frozenset({states.RERUN}),
    # RUNNING -> STOPPING
    (states.RUNNING, STOP): frozenset({states.STOPPING}),
    (states.WAITING, STOP): frozenset({states.STOPPING}),
    (states.QUEUED, STOP): frozenset({states.STOPPING}),
    # RERUN -> STOPPED (a graceful stop) | KILLED (a hard one); NEW -> NOT_RUN
    (states.RERUN, CANCEL): _BY_STOP,
    (states.NEW, CANCEL): frozenset({states.NOT_RUN}),
    # STOPPING -> immortal(PID) -> KILLED
    (states.STOPPING, GIVE_UP): frozenset({_IMMORTAL}),
    (_IMMORTAL, DIED): frozenset({states.KILLED}),
    # RUNNING <-> WAITING
    (states.RUNNING, SET_WAITING): frozenset({states.WAITING}),
    # a job may set itself waiting before its runner saw it leave the queue
    (states.QUEUED, SET_WAITING): frozenset({states.WAITING}),
    (states.WAITING, SET_RUNNING): frozenset({states.RUNNING}),
    # a dead runner's tasks that had started: KILLED (those that never did are cancelled)
    (states.RUNNING, SWEEP): _KILLED,
    (states.WAITING, SWEEP): _KILLED,
    (states.RERUN, SWEEP): _KILLED,
    (states.STOPPING, SWEEP): _KILLED,
    (states.QUEUED, SWEEP): _KILLED,
    # a dead runner's job that ended by itself: how it ended
    (states.RUNNING, SETTLE): _ENDED,
    (states.WAITING, SETTLE): _ENDED,
    (states.QUEUED, SETTLE): _ENDED,
    (states.STOPPING, SETTLE): _ENDED,
}

# -- workflow run events --------------------------------------------------------------------

#: A stop was asked for (by the server, or by the runner after a failure).
STOP_RUN = "stop_run"
#: The run ended for good: its list ran out, a stop ended it, or a failure stopped it.
FINISH = "finish"
#: The run ended unfinished (its runner was killed, or died): it will be resumed.
CUT_SHORT = "cut_short"

_RUN_ENDED = frozenset({states.SUCCESS, _ERROR, _TERMINATED, states.TIMEOUT, states.STOPPED})

#: ``(kind of the run's status, event) -> kinds it may move to``.
RUN_MOVES: dict[tuple[str, str], frozenset[str]] = {
    # RUNNING -> STOPPING (STOPPING again: a forced stop after a graceful one)
    (states.RUNNING, STOP_RUN): frozenset({states.STOPPING}),
    (states.STOPPING, STOP_RUN): frozenset({states.STOPPING}),
    # RUNNING | STOPPING -> success0 | error(N) | terminated(-N) | STOPPED
    (states.RUNNING, FINISH): _RUN_ENDED,
    (states.STOPPING, FINISH): _RUN_ENDED,
    # a run cut short and then stopped before it was resumed: error(N) -> STOPPED
    (_ERROR, FINISH): frozenset({states.STOPPED}),
    (_TERMINATED, FINISH): frozenset({states.STOPPED}),
    # RUNNING | STOPPING -> error(N) | terminated(-N), unfinished
    (states.RUNNING, CUT_SHORT): _FAILED,
    (states.STOPPING, CUT_SHORT): _FAILED,
}


class IllegalTransition(RuntimeError):
    """A status change the tables do not allow: a defect in spad, never a user's mistake."""


def kind(status: str) -> str:
    """``error(3)`` -> ``error``; a status without a number is its own kind."""
    head, paren, _ = status.partition("(")
    return head if paren else status


def check(
    table: dict[tuple[str, str], frozenset[str]], current: str, event: str, target: str
) -> None:
    allowed = table.get((kind(current), event))
    if allowed is None or kind(target) not in allowed:
        raise IllegalTransition(f"{current} --{event}--> {target} is not an allowed move")


def move_task(
    conn: Statements,
    run_id: int,
    task: str,
    current: str,
    event: str,
    target: str,
    **details: Any,
) -> bool:
    """Move a task from ``current`` to ``target`` on ``event``; False when the store kept
    another status (the task set itself ``waiting`` first, or a ``set_status`` lost a race).

    ``details`` are the columns the event's store operation takes (pid, exit_code, times...).
    """
    check(TASK_MOVES, current, event, target)
    written = _TASK_WRITERS[event](conn, run_id, task, target, current, **details)
    if written:
        record_transition(conn, run_id, task, current, target, details)
    return written


def move_run(conn: Statements, run_id: int, current: str, event: str, target: str) -> None:
    """Move a workflow run from ``current`` to ``target`` on ``event``."""
    check(RUN_MOVES, current, event, target)
    if event == STOP_RUN:
        runs.mark_stopping(conn, run_id)
    else:
        runs.end(conn, run_id, target, finished=event == FINISH)
    record_transition(conn, run_id, None, current, target, {})


def create_run(
    conn: sqlite3.Connection,
    workflow_id: int,
    selected: list[str],
    only_task: str | None = None,
    from_task: str | None = None,
    resumed_from: int | None = None,
) -> int:
    """A new run, ``running``: its selected tasks ``new``, the others ``not run``."""
    run_id = runs.create(conn, workflow_id, selected, only_task, from_task, resumed_from)
    record_transition(conn, run_id, None, states.NOT_RUN, states.RUNNING, {})
    return run_id


def record_transition(
    conn: Statements,
    run_id: int,
    task: str | None,
    old: str,
    new: str,
    details: dict[str, Any],
) -> None:
    """Every change passes here, in the transaction that wrote it (``task`` None: the run's
    own). The event for the live view and the hooks is appended by the store itself: a trigger
    on the status column (migration 6) writes it in the same statement, so it holds for every
    writer, alarms included. Here the journal is cut to its size (migration 12)."""
    events.keep_newest(conn)


# -- the store operation of each task event -------------------------------------------------


def _launched(
    conn: Statements, run_id: int, task: str, status: str, current: str, **d: Any
) -> bool:
    # A task may set itself waiting before this write lands: the store keeps its word.
    runs.task_launched(conn, run_id, task, status, **d)
    return True


def _not_started(
    conn: Statements, run_id: int, task: str, status: str, current: str, **d: Any
) -> bool:
    runs.task_not_started(conn, run_id, task, status, **d)
    return True


def _ended(conn: Statements, run_id: int, task: str, status: str, current: str, **d: Any) -> bool:
    runs.task_ended(conn, run_id, task, status, **d)
    return True


def _retrying(
    conn: Statements, run_id: int, task: str, status: str, current: str, **d: Any
) -> bool:
    runs.task_retrying(conn, run_id, task, status, **d)
    return True


def _set(conn: Statements, run_id: int, task: str, status: str, current: str, **d: Any) -> bool:
    runs.set_task_status(conn, run_id, task, status)
    return True


def _closed(conn: Statements, run_id: int, task: str, status: str, current: str, **d: Any) -> bool:
    runs.task_closed(conn, run_id, task, status, **d)
    return True


def _set_by_task(
    conn: Statements, run_id: int, task: str, status: str, current: str, **d: Any
) -> bool:
    # The task's own word, written only if nothing moved it meanwhile.
    return runs.set_task_status_if(conn, run_id, task, status, current)


_TASK_WRITERS = {
    LAUNCH: _launched,
    START_FAILED: _not_started,
    END: _ended,
    RETRY: _retrying,
    STOP: _set,
    CANCEL: _set,
    GIVE_UP: _set,
    DIED: _closed,
    SET_WAITING: _set_by_task,
    SET_RUNNING: _set_by_task,
    SWEEP: _closed,
    STARTED: _set_by_task,  # from queued only: a job that set itself waiting stays so
    SETTLE: _ended,
}
