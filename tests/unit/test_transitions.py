"""The transition owner: the only writer of a status, and it refuses a move it does not know."""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

import pytest

from spad import states, transitions
from spad.store import runs
from spad.transitions import IllegalTransition

SRC = Path(transitions.__file__).parent
OWNER = SRC / "transitions.py"
STORE = SRC / "store" / "runs.py"
#: SQL that writes the status of a run or of a run's task (a trigger that reads
#: ``NEW.status`` to set another column writes none).
WRITES_A_STATUS = re.compile(
    r"UPDATE\s+(runs|run_tasks)\s+SET\b[^;]{0,400}?(?<![.\w])status\s*="
    r"|(INSERT|REPLACE)\s+INTO\s+(runs|run_tasks)\b",
    re.I | re.S,
)


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _status_writers() -> set[str]:
    """The functions of the runs store whose SQL writes a ``status``."""
    found = set()
    for node in ast.parse(STORE.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            text = ast.get_source_segment(STORE.read_text(), node) or ""
            if WRITES_A_STATUS.search(text):
                found.add(node.name)
    return found


def test_only_the_runs_store_holds_sql_that_writes_a_status() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in _sources()
        if path != STORE and WRITES_A_STATUS.search(path.read_text())
    ]
    assert offenders == []


def test_only_the_transition_owner_calls_the_store_operations_that_write_a_status() -> None:
    writers = _status_writers()
    # The grep is only as good as this list: it must hold every status write of the store.
    assert {"create", "end", "mark_stopping", "task_ended", "set_task_status"} <= writers
    offenders = []
    for path in _sources():
        if path in (OWNER, STORE):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("store.runs"):
                offenders += [
                    f"{path.relative_to(SRC)} imports {a.name}"
                    for a in node.names
                    if a.name in writers
                ]
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "runs"
                and node.attr in writers
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} runs.{node.attr}")
    assert offenders == []


def test_every_event_has_a_store_operation() -> None:
    events = {event for _, event in transitions.TASK_MOVES}
    assert events == set(transitions._TASK_WRITERS)


def _run(conn: sqlite3.Connection) -> int:
    conn.execute("INSERT INTO projects (ext_id, name) VALUES (1, 'p')")
    conn.execute("INSERT INTO workflows (project_id, ext_id, name) VALUES (1, 1, 'w')")
    conn.execute(
        "INSERT INTO tasks (workflow_id, ext_id, name, place, exec, function, params, retries,"
        " retry_delay, stop_signal, stop_timeout, env, cwd)"
        " VALUES (1, 1, 't', 1, 'await', 'simple', '[]', 1, 1, 'SIGTERM', 6, '{}', 'data')"
    )
    return transitions.create_run(conn, 1, ["t"])


@pytest.mark.parametrize(
    ("current", "event", "target"),
    [
        (states.SUCCESS, transitions.LAUNCH, states.RUNNING),  # an ended task does not restart
        (states.NEW, transitions.END, states.SUCCESS),  # a task that never ran did not end
        (states.RUNNING, transitions.END, states.STOPPED),  # stopped only after a stop
        (states.KILLED, transitions.STOP, states.STOPPING),
        (states.RUNNING, transitions.RETRY, states.RERUN),  # only a failure is retried
        (states.error(2), transitions.LAUNCH, states.RUNNING),
        (states.RUNNING, transitions.GIVE_UP, states.immortal(7)),  # only after a stop
        (states.STOPPED, transitions.SET_RUNNING, states.RUNNING),
    ],
)
def test_an_illegal_task_move_raises_and_writes_nothing(
    conn: sqlite3.Connection, current: str, event: str, target: str
) -> None:
    run_id = _run(conn)
    with pytest.raises(IllegalTransition, match=re.escape(f"{current} --{event}--> {target}")):
        transitions.move_task(conn, run_id, "t", current, event, target, exit_code=0)
    row = runs.task(conn, run_id, "t")
    assert row is not None and row["status"] == states.NEW


@pytest.mark.parametrize(
    ("current", "event", "target"),
    [
        (states.SUCCESS, transitions.STOP_RUN, states.STOPPING),  # a finished run stays so
        (states.STOPPED, transitions.FINISH, states.SUCCESS),
        (states.RUNNING, transitions.CUT_SHORT, states.SUCCESS),  # unfinished is a failure
        (states.error(1), transitions.FINISH, states.SUCCESS),
    ],
)
def test_an_illegal_run_move_raises_and_writes_nothing(
    conn: sqlite3.Connection, current: str, event: str, target: str
) -> None:
    run_id = _run(conn)
    with pytest.raises(IllegalTransition):
        transitions.move_run(conn, run_id, current, event, target)
    row = runs.get(conn, run_id)
    assert row is not None and row["status"] == states.RUNNING and row["ended_at"] is None


def test_a_legal_path_writes_each_status_and_tells_the_recorder(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str | None, str, str]] = []
    monkeypatch.setattr(
        transitions,
        "record_transition",
        lambda _conn, _run, task, old, new, _details: seen.append((task, old, new)),
    )
    run_id = _run(conn)
    move = transitions.move_task
    move(conn, run_id, "t", states.NEW, transitions.LAUNCH, states.RUNNING, pid=None,
         identity=None, attempt=1, log_path="x")  # fmt: skip
    move(conn, run_id, "t", states.RUNNING, transitions.STOP, states.STOPPING)
    move(conn, run_id, "t", states.STOPPING, transitions.END, states.KILLED, exit_code=-9)
    transitions.move_run(conn, run_id, states.RUNNING, transitions.FINISH, states.STOPPED)
    assert seen == [
        (None, states.NOT_RUN, states.RUNNING),
        ("t", states.NEW, states.RUNNING),
        ("t", states.RUNNING, states.STOPPING),
        ("t", states.STOPPING, states.KILLED),
        (None, states.RUNNING, states.STOPPED),
    ]
    row = runs.task(conn, run_id, "t")
    assert row is not None and (row["status"], row["exit_code"]) == (states.KILLED, -9)
    run = runs.get(conn, run_id)
    assert run is not None and (run["status"], run["finished"]) == (states.STOPPED, 1)


def test_set_status_loses_to_a_move_made_meanwhile(conn: sqlite3.Connection) -> None:
    run_id = _run(conn)
    transitions.move_task(conn, run_id, "t", states.NEW, transitions.CANCEL, states.NOT_RUN)
    # The task believes it is running; the store knows better: nothing is written.
    assert not transitions.move_task(
        conn, run_id, "t", states.RUNNING, transitions.SET_WAITING, states.WAITING
    )
    row = runs.task(conn, run_id, "t")
    assert row is not None and row["status"] == states.NOT_RUN
