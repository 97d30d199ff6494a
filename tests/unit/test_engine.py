"""Every rule of a run, through the engine with the fake executor and a clock moved by hand.

The real-process tests (tests/integration) prove the local executor; these prove the engine.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spad import executors, logfiles, states, transitions
from spad.executors.base import Launch
from spad.runner.engine import KILL_WAIT, WAITING_POLL
from tests.conftest import task
from tests.unit.engine_run import EngineRun, Script
from tests.unit.fake_executor import FakeExecutor, FakeProcess

TERM, KILL = int(signal.SIGTERM), int(signal.SIGKILL)
#: A task that runs until it is stopped.
FOREVER = Script(runs=None)

MakeRun = Callable[..., EngineRun]


@pytest.fixture
def make_run(conn: sqlite3.Connection, tmp_path: Path) -> Iterator[MakeRun]:
    made: list[EngineRun] = []

    def make(*tasks: dict[str, Any], **options: Any) -> EngineRun:
        made.append(EngineRun(conn, tmp_path / "home", *tasks, **options))
        return made[-1]

    yield make
    for run in made:
        run.close()


def set_status(run: EngineRun, name: str, status: str) -> bool:
    """What the server's ``set_status`` does when the task calls ``spa_ctl set_status``."""
    waiting = status == states.WAITING
    return transitions.move_task(
        run.conn,
        run.run_id,
        name,
        states.RUNNING if waiting else states.WAITING,
        transitions.SET_WAITING if waiting else transitions.SET_RUNNING,
        status,
    )


# -- the sequence ---------------------------------------------------------------------------


def test_awaited_tasks_run_one_after_the_other(make_run: MakeRun) -> None:
    run = make_run(task("a", exec="await"), task("b", exec="await"))
    run.script("a", Script(runs=5)).script("b", Script(runs=2)).start()
    assert run.running() == ["a"] and run.statuses() == {"a": "running", "b": "new"}
    run.advance(4.9)
    assert run.running() == ["a"]
    run.advance(0.1)
    assert run.running() == ["b"] and run.task("a")["status"] == states.SUCCESS
    assert run.finish()["status"] == states.SUCCESS
    assert [p.started for p in run.fake.started] == [0.0, 5.0]
    assert run.run()["finished"] == 1 and run.clock.now == 7.0


def test_background_tasks_start_at_once_and_the_run_waits_for_them(make_run: MakeRun) -> None:
    run = make_run(task("bg", exec="parallel"), task("a", exec="await"), task("c", exec="await"))
    run.script("bg", Script(runs=10)).script("a", Script(runs=1)).script("c", Script(runs=1))
    run.start()
    assert sorted(run.running()) == ["a", "bg"]
    run.advance(2)
    assert run.running() == ["bg"] and run.statuses()["c"] == states.SUCCESS
    assert run.workflow_status() == states.RUNNING  # the list is done; bg still runs
    assert run.finish()["status"] == states.SUCCESS and run.clock.now == 10.0


def test_each_ended_attempt_is_cleaned_up_by_its_executor(make_run: MakeRun) -> None:
    run = make_run(task("a", retries=0)).script("a", Script(runs=1)).start()
    run.finish()
    assert [p.cleaned for p in run.fake.started] == [True]


def test_the_executor_owns_the_output_and_writes_it_where_the_launch_says(
    make_run: MakeRun, tmp_path: Path
) -> None:
    run = make_run(task("a")).script("a", Script(runs=0, output=b"hello\n")).start()
    run.finish()
    path = Path(logfiles.path_for(tmp_path / "home" / "logs", "pr1", "w", run.run_id, "a", 1))
    assert run.task("a")["log_path"] == str(path)
    assert path.read_bytes() == b"hello\n"


# -- failures and retries ------------------------------------------------------------------


def test_a_failed_task_is_retried_with_doubling_delays_then_fails_the_run(
    make_run: MakeRun,
) -> None:
    run = make_run(task("a", retries=3, retry_delay=1), task("b"))
    run.script("a", Script(runs=0, code=2)).start()
    run.advance(0)
    assert run.task("a")["status"] == states.RERUN and run.task("a")["exit_code"] == 2
    assert run.task("a")["next_attempt_at"] is not None  # when it starts again, for status
    row = run.finish()
    starts = [p.started for p in run.attempts("a")]
    assert len(starts) == 4 and starts[:2] == [0.0, 1.0]
    # 1 s, then 2 s and 4 s, each stretched by up to 10% so that failures do not align.
    assert 2.0 <= starts[2] - starts[1] <= 2.2 and 4.0 <= starts[3] - starts[2] <= 4.4
    assert run.statuses() == {"a": "error(2)", "b": states.NOT_RUN}
    assert (row["status"], row["finished"]) == ("error(2)", 1)
    assert run.task("a")["attempt"] == 4


def test_a_task_that_succeeds_on_a_retry_lets_the_run_go_on(make_run: MakeRun) -> None:
    run = make_run(task("a", retries=1, retry_delay=2), task("b"))
    run.script("a", Script(runs=0, code=1), Script(runs=1)).start()
    assert run.finish()["status"] == states.SUCCESS
    assert run.statuses() == {"a": states.SUCCESS, "b": states.SUCCESS}


def test_retries_minus_one_restarts_without_end(make_run: MakeRun) -> None:
    run = make_run(task("a", retries=-1, retry_delay=1)).script("a", Script(runs=0, code=3))
    run.start()
    run.advance(3600)
    assert len(run.attempts("a")) > 60  # a minute apart at most, after the first few
    assert run.task("a")["status"] == states.RERUN and not run.engine.done


def test_a_failure_by_signal_ends_the_run_terminated(make_run: MakeRun) -> None:
    run = make_run(task("a", retries=0)).script("a", Script(runs=0, code=-TERM)).start()
    assert run.finish()["status"] == "terminated(-15)"


def test_on_failure_stop_stops_the_other_tasks(make_run: MakeRun) -> None:
    run = make_run(
        task("bg", exec="parallel"), task("a", retries=0), task("later"), on_failure="stop"
    )
    run.script("bg", FOREVER).script("a", Script(runs=1, code=4)).start()
    row = run.finish()
    assert run.attempts("bg")[0].received == [TERM]
    assert run.statuses() == {"bg": states.STOPPED, "a": "error(4)", "later": states.NOT_RUN}
    assert (row["status"], row["finished"]) == ("error(4)", 1)


def test_on_failure_continue_goes_on_and_the_run_ends_with_the_failure(
    make_run: MakeRun,
) -> None:
    run = make_run(task("a", retries=0), task("b"), on_failure="continue")
    run.script("a", Script(runs=0, code=5)).start()
    row = run.finish()
    assert run.statuses() == {"a": "error(5)", "b": states.SUCCESS}
    assert (row["status"], row["finished"]) == ("error(5)", 1)


@pytest.mark.parametrize(
    ("error", "code"),
    [(FileNotFoundError(2, "No such file"), 127), (PermissionError(13, "x"), 126)],
)
def test_a_task_that_cannot_start_fails_with_126_or_127(
    make_run: MakeRun, tmp_path: Path, error: OSError, code: int
) -> None:
    run = make_run(task("a", retries=1, retry_delay=1), task("b"))
    run.script("a", Script(cannot_start=error)).start()
    assert run.task("a")["status"] == states.RERUN  # a failure like any other: retried
    row = run.finish()
    assert (row["status"], run.task("a")["exit_code"]) == (f"error({code})", code)
    assert run.task("a")["attempt"] == 2 and run.task("b")["status"] == states.NOT_RUN
    log = Path(logfiles.path_for(tmp_path / "home" / "logs", "pr1", "w", run.run_id, "a", 2))
    assert log.read_text().startswith("spad: cannot start simple")


# -- stopping ------------------------------------------------------------------------------


def test_a_graceful_stop_signals_each_task_and_the_run_ends_stopped(make_run: MakeRun) -> None:
    run = make_run(task("bg", exec="parallel"), task("a"), task("later"))
    run.script("bg", FOREVER).script("a", FOREVER).start()
    run.stop(transitions.GRACEFUL)
    assert run.workflow_status() == states.STOPPING
    assert run.statuses() == {"bg": "stopping", "a": "stopping", "later": "new"}
    row = run.finish()
    assert [p.received for p in run.fake.started] == [[TERM], [TERM]]
    assert run.statuses() == {"bg": "stopped", "a": "stopped", "later": states.NOT_RUN}
    assert (row["status"], row["finished"]) == (states.STOPPED, 1) and run.clock.now == 0


def test_a_task_deaf_to_its_stop_signal_is_killed_at_its_stop_timeout(make_run: MakeRun) -> None:
    run = make_run(task("a", stop_timeout=6, stop_signal="SIGINT"))
    run.script("a", Script(runs=None, ignores=frozenset({int(signal.SIGINT)}))).start()
    run.advance(1)
    run.stop(transitions.GRACEFUL)
    run.advance(5.9)
    assert run.task("a")["status"] == states.STOPPING
    run.advance(0.1)
    assert run.attempts("a")[0].received == [int(signal.SIGINT), KILL]
    assert run.finish()["status"] == states.STOPPED and run.task("a")["status"] == states.KILLED


def test_a_task_that_outlives_sigkill_is_immortal_and_the_run_ends(make_run: MakeRun) -> None:
    run = make_run(task("a", stop_timeout=2))
    run.script("a", Script(runs=None, ignores=frozenset({TERM}), immortal=True)).start()
    run.stop(transitions.GRACEFUL)
    run.advance(2 + KILL_WAIT - 0.01)
    assert run.task("a")["status"] == states.STOPPING
    row = run.finish()
    assert states.is_immortal(run.task("a")["status"]) and row["status"] == states.STOPPED


def test_a_forced_stop_kills_at_once(make_run: MakeRun) -> None:
    run = make_run(task("bg", exec="parallel"), task("a"))
    run.script("bg", FOREVER).script("a", FOREVER).start()
    run.stop(transitions.FORCED)
    row = run.finish()
    assert [p.received for p in run.fake.started] == [[KILL], [KILL]]
    assert run.statuses() == {"bg": states.KILLED, "a": states.KILLED}
    assert row["status"] == states.STOPPED and run.clock.now == 0


def test_a_forced_stop_overtakes_a_graceful_one(make_run: MakeRun) -> None:
    run = make_run(task("a", stop_timeout=60))
    run.script("a", Script(runs=None, ignores=frozenset({TERM}))).start()
    run.stop(transitions.GRACEFUL)
    run.advance(1)
    run.stop(transitions.FORCED)
    assert run.finish()["status"] == states.STOPPED and run.clock.now == 1
    assert run.task("a")["status"] == states.KILLED


def test_a_stop_during_a_retry_delay_ends_the_task_stopped(make_run: MakeRun) -> None:
    run = make_run(task("a", retries=5, retry_delay=30)).script("a", Script(runs=0, code=1))
    run.start()
    run.advance(1)
    assert run.task("a")["status"] == states.RERUN
    run.stop(transitions.GRACEFUL)
    assert run.finish()["status"] == states.STOPPED and run.clock.now == 1
    assert run.task("a")["status"] == states.STOPPED and len(run.attempts("a")) == 1


def test_a_stop_before_any_task_started_leaves_them_not_run(make_run: MakeRun) -> None:
    run = make_run(task("a"), task("b", exec="parallel"))
    run.stop(transitions.GRACEFUL)  # the runner found a stop request on its run
    run.start()
    row = run.finish()
    assert run.fake.started == []
    assert run.statuses() == {"a": states.NOT_RUN, "b": states.NOT_RUN}
    assert (row["status"], row["finished"]) == (states.STOPPED, 1)


# -- waiting tasks -------------------------------------------------------------------------


def test_a_graceful_stop_leaves_a_waiting_task_until_it_runs_again(make_run: MakeRun) -> None:
    run = make_run(task("a", stop_timeout=5)).script("a", FOREVER).start()
    assert set_status(run, "a", states.WAITING)
    run.advance(1)
    run.stop(transitions.GRACEFUL)
    run.advance(30)
    assert run.task("a")["status"] == states.WAITING and run.attempts("a")[0].received == []
    assert set_status(run, "a", states.RUNNING)
    run.advance(WAITING_POLL)
    assert run.attempts("a")[0].received == [TERM]
    row = run.finish()
    assert run.task("a")["status"] == states.STOPPED and row["status"] == states.STOPPED


def test_a_task_stopped_earlier_in_the_turn_of_a_failure_stop_is_not_left_waiting(
    make_run: MakeRun,
) -> None:
    """One loop turn: b, which set itself waiting, reaches its timeout and gets its stop
    signal; then a fails for good and stops the run. The run's stop must read b as the turn
    left it (stopping), not as the store had it before the turn (waiting)."""
    run = make_run(
        task("a", exec="parallel", retries=0), task("b", timeout=5, stop_timeout=1, retries=0)
    )
    run.script("a", Script(runs=5, code=1)).script("b", FOREVER).start()
    assert set_status(run, "b", states.WAITING)
    row = run.finish()  # raised IllegalTransition (waiting -> timeout) when the read was stale
    assert run.attempts("b")[0].received == [TERM]
    assert run.task("b")["status"] == states.TIMEOUT and row["finished"] == 1


def test_a_forced_stop_kills_a_waiting_task(make_run: MakeRun) -> None:
    run = make_run(task("a")).script("a", FOREVER).start()
    set_status(run, "a", states.WAITING)
    run.stop(transitions.FORCED)
    assert run.finish()["status"] == states.STOPPED
    assert run.task("a")["status"] == states.KILLED


def test_a_task_that_set_itself_waiting_before_it_was_recorded_stays_waiting(
    make_run: MakeRun,
) -> None:
    run = make_run(task("a", retries=1, retry_delay=1))
    run.script("a", Script(runs=0, code=1), FOREVER).start()
    run.advance(0.5)
    # Between the end of attempt 1 and the start of attempt 2 the store says rerun; the
    # second attempt reports waiting at once, before the runner's launch write.
    run.conn.execute(
        "UPDATE run_tasks SET status = 'waiting' WHERE run_id = ? AND name = 'a'", (run.run_id,)
    )
    run.advance(1)
    assert len(run.attempts("a")) == 2 and run.task("a")["status"] == states.WAITING


# -- the runner's own end ------------------------------------------------------------------


def test_a_hard_stop_kills_everything_and_leaves_the_run_to_be_resumed(
    make_run: MakeRun,
) -> None:
    run = make_run(
        task("bg", exec="parallel"), task("r", exec="parallel", retries=2, retry_delay=9),
        task("a"), task("later"),
    )  # fmt: skip
    run.script("bg", FOREVER).script("r", Script(runs=0, code=1)).script("a", FOREVER)
    run.start()
    run.advance(1)
    run.hard_stop(int(signal.SIGTERM))
    row = run.finish()
    assert run.statuses() == {
        "bg": states.KILLED, "r": states.KILLED, "a": states.KILLED, "later": states.NOT_RUN,
    }  # fmt: skip
    assert (row["status"], row["finished"]) == ("terminated(-15)", 0)


# -- the seam ------------------------------------------------------------------------------


def test_a_new_executor_is_one_module_and_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(executors.REGISTRY, "fake", "tests.unit.fake_executor")
    executor = executors.load("fake", str(tmp_path))
    assert type(executor).__name__ == "FakeExecutor" and executor.name == "fake"
    with pytest.raises(executors.UnknownExecutor, match="'nope' is not known"):
        executors.load("nope", str(tmp_path))


def test_the_engine_runs_each_task_on_the_executor_its_definition_names(
    make_run: MakeRun, conn: sqlite3.Connection
) -> None:
    run = make_run(task("a"), task("b"))
    conn.execute("UPDATE run_tasks SET executor = 'elsewhere' WHERE name = 'b'")
    asked: list[str] = []

    def executor_for(name: str) -> Any:
        asked.append(name)
        return run.fake

    from spad.runner.engine import Engine

    engine = Engine(
        conn, str(run.home), run.engine.info, executor_for, run.timers, run._watch, run._watch
    )
    assert sorted(asked) == ["elsewhere", "local"] and set(engine.executors) == set(asked)
    assert [t.executor for t in engine.tasks] == ["local", "elsewhere"]


def test_the_server_has_the_executor_reclaim_what_a_dead_runner_left(
    make_run: MakeRun, conn: sqlite3.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spad.home import Home
    from spad.server.runners import Runners

    monkeypatch.setitem(executors.REGISTRY, "fake", "tests.unit.fake_executor")
    run = make_run(task("a", exec="parallel"), task("b"))
    conn.execute("UPDATE run_tasks SET executor = 'fake'")
    run.start()  # its runner dies here, both tasks running (on the fake, as named)
    runners = Runners(Home(tmp_path / "home"), conn, "http://127.0.0.1:1")
    runners._sweep(run.run_id)
    reclaimed = runners._executor("fake")
    assert isinstance(reclaimed, FakeExecutor)
    assert reclaimed.reclaimed == [(None, "fake:a:1"), (None, "fake:b:1")]
    assert run.statuses() == {"a": states.KILLED, "b": states.KILLED}


def test_a_dead_runner_s_task_that_never_started_is_not_run(
    make_run: MakeRun, conn: sqlite3.Connection, tmp_path: Path
) -> None:
    from spad.home import Home
    from spad.server.runners import Runners

    run = make_run(task("a"), task("b")).script("a", FOREVER)
    run.start()
    Runners(Home(tmp_path / "home"), conn, "http://127.0.0.1:1")._sweep(run.run_id)
    assert run.statuses() == {"a": states.KILLED, "b": states.NOT_RUN}
    assert run.task("b")["ended_at"] is None  # it never started, so it never ended either


# -- time limits ----------------------------------------------------------------------------


def test_a_task_past_its_timeout_is_stopped_with_its_ladder_and_ends_timeout(
    make_run: MakeRun,
) -> None:
    run = make_run(task("a", timeout=5, stop_timeout=2), task("later"))
    run.script("a", Script(runs=None, ignores=frozenset({TERM}))).start()
    run.advance(4.9)
    assert run.task("a")["status"] == states.RUNNING
    run.advance(0.1)
    assert run.task("a")["status"] == states.STOPPING
    run.advance(2)
    assert run.attempts("a")[0].received == [TERM, KILL]
    row = run.finish()
    assert run.statuses() == {"a": states.TIMEOUT, "later": states.NOT_RUN}
    assert (row["status"], row["finished"]) == (states.TIMEOUT, 1)


def test_a_timed_out_task_is_retried_and_a_later_attempt_may_succeed(make_run: MakeRun) -> None:
    run = make_run(task("a", timeout=5, retries=1, retry_delay=1))
    run.script("a", FOREVER, Script(runs=1)).start()
    run.advance(5)
    assert run.task("a")["status"] == states.RERUN
    assert run.finish()["status"] == states.SUCCESS
    assert run.task("a")["attempt"] == 2


def test_a_task_that_ends_in_time_is_not_touched_by_its_timeout(make_run: MakeRun) -> None:
    run = make_run(task("a", timeout=5)).script("a", Script(runs=4.9)).start()
    assert run.finish()["status"] == states.SUCCESS
    assert run.attempts("a")[0].received == []


def test_a_turn_starts_every_task_before_it_writes(make_run: MakeRun) -> None:
    """Spawning under the write lock kept a thousand starting runners queued on it: the
    processes of a turn are all started first, then recorded."""
    run = make_run(
        task("bg1", exec="parallel"), task("bg2", exec="parallel"), task("main", exec="await")
    )
    order: list[str] = []
    runner_conn = run.store.connection()  # the runner's own, where its writes go
    runner_conn.set_trace_callback(
        lambda sql: order.append("write") if sql.lstrip().upper().startswith("UPDATE") else None
    )
    start = run.fake.start

    def recorded_start(launch: Launch) -> FakeProcess:
        order.append("start")
        return start(launch)

    run.fake.start = recorded_start  # type: ignore[method-assign]
    run.start()
    runner_conn.set_trace_callback(None)
    assert order[:3] == ["start"] * 3 and "start" not in order[3:]
    assert sorted(run.running()) == ["bg1", "bg2", "main"]
