"""One run of the engine on the fake executor and a clock the test moves: what the runner's loop
does (wake at each deadline or end, run the timers, collect), in memory and in microseconds.

The engine writes through the runner's own connection, one loop turn at a time (each start,
wake and stop is a turn, as in ``Loop.run``): what a turn writes is made at its end."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from spad import states
from spad.definitions import catalog
from spad.definitions.model import parse_spec
from spad.runner.engine import Engine, RunInfo
from spad.runner.timers import Timers
from spad.store import definitions as defs
from spad.store import runs
from spad.store.turns import RunnerStore
from spad.transitions import create_run
from tests.conftest import tree
from tests.unit.fake_executor import FakeExecutor, FakeProcess, Script


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class EngineRun:
    """A workflow ``w`` of project ``pr1`` with the given tasks, started as a run."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        home: Path,
        *tasks: dict[str, Any],
        on_failure: str = "stop",
        selected: list[str] | None = None,
    ) -> None:
        self.conn = conn
        self.home = home
        workflow = {"name": "w", "on_failure": on_failure, "tasks": list(tasks)}
        catalog.create(conn, parse_spec(tree([workflow])))
        project = defs.project(conn, "pr1")
        assert project is not None
        row = defs.workflow(conn, project["id"], "w")
        assert row is not None
        names = [t["name"] for t in tasks] if selected is None else selected
        self.run_id = create_run(conn, row["id"], names)
        self.clock = Clock()
        self.timers = Timers(clock=self.clock)
        self.fake = FakeExecutor(self.clock)
        info = RunInfo(self.run_id, "pr1", "w", on_failure, "http://127.0.0.1:1", "t" * 32)
        path = conn.execute("PRAGMA database_list").fetchone()["file"]
        self.store = RunnerStore(path)  # the runner's store; the test reads through conn
        self.engine = Engine(
            self.store, str(home), info, self._executor, self.timers, self._watch, self._watch
        )

    def _executor(self, name: str) -> FakeExecutor:
        assert name == "local"  # what a definition without an executor names
        return self.fake

    @staticmethod
    def _watch(*_: object) -> None:
        raise AssertionError("a fake attempt has no output descriptor: its log is its own")

    def close(self) -> None:
        self.store.close()

    def script(self, task: str, *attempts: Script) -> EngineRun:
        self.fake.script(task, *attempts)
        return self

    # -- moving time ---------------------------------------------------------------------------

    def start(self) -> EngineRun:
        with self.store.turn():
            self.engine.start()
        return self

    def stop(self, mode: str) -> None:
        """The runner's SIGUSR1 (graceful), SIGUSR2 (forced), or a stop request found."""
        with self.store.turn():
            self.engine.stop(mode)

    def hard_stop(self, signum: int) -> None:
        with self.store.turn():
            self.engine.hard_stop(signum)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, waking as the loop would at each deadline and each end."""
        until = self.clock.now + seconds
        while not self.engine.done:
            wake = self._next_wake()
            if wake is None or wake > until:
                break
            self.clock.now = max(self.clock.now, wake)
            with self.store.turn():
                self.timers.run_due()
                self.engine.collect()
        if not self.engine.done:  # the clock stops where the run ended
            self.clock.now = max(self.clock.now, until)

    def finish(self, within: float = 3600.0) -> sqlite3.Row:
        """Run until the run ends (it must, within ``within`` seconds); its row."""
        self.advance(within)
        assert self.engine.done, f"still going after {within} s: {self.statuses()}"
        return self.run()

    def _next_wake(self) -> float | None:
        timeout = self.timers.timeout()
        wakes = [self.clock.now + timeout] if timeout is not None else []
        end = self.fake.next_end()
        if end is not None:
            wakes.append(end)
        return min(wakes) if wakes else None

    # -- what the store says --------------------------------------------------------------------

    def run(self) -> sqlite3.Row:
        row = runs.get(self.conn, self.run_id)
        assert row is not None
        return row

    def task(self, name: str) -> sqlite3.Row:
        row = runs.task(self.conn, self.run_id, name)
        assert row is not None
        return row

    def statuses(self) -> dict[str, str]:
        return {row["name"]: row["status"] for row in runs.tasks(self.conn, self.run_id)}

    def attempts(self, task: str) -> list[FakeProcess]:
        return [p for p in self.fake.started if p.task == task]

    def running(self) -> list[str]:
        return [p.task for p in self.fake.running()]

    def workflow_status(self) -> str:
        return str(self.run()["status"])


__all__ = ["EngineRun", "Script", "states"]
