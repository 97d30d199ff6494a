"""The runner's loop wakes an executor that asked for it: a scheduler that is polled gets its
collect() called although no descriptor or signal ever wakes the loop."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any, cast

import pytest

from spad import states
from spad.runner.engine import Engine
from spad.runner.main import Loop
from spad.store.turns import RunnerStore
from tests.conftest import task
from tests.unit.engine_run import EngineRun
from tests.unit.fake_executor import FakeExecutor, Script


class PolledFake(FakeExecutor):
    """Ends are seen only by asking, as with a cluster's queue."""

    def __init__(self) -> None:
        super().__init__(time.monotonic)
        self.polls = 0

    def poll_interval(self) -> float:
        return 0.01

    def collect(self) -> list[Any]:
        self.polls += 1
        return super().collect()


class QuietInbox:
    """A signal inbox that never receives one (the test's process keeps its own handlers)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()

    def fileno(self) -> int:
        return self._read

    def drain(self) -> list[int]:
        return []

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


def run_loop(setup: EngineRun, loop: Loop, executor: FakeExecutor, store: RunnerStore) -> None:
    """The runner's loop over ``setup``'s run until it ends, on the runner's own kind of
    store, with ``executor`` for every task."""
    engine = Engine(
        store, str(setup.home), setup.engine.info, lambda _: executor, loop.timers,
        loop.watch, loop.unwatch,
    )  # fmt: skip
    inbox = QuietInbox()
    try:
        loop.run(engine, cast(Any, inbox), store)
    finally:
        inbox.close()
        store.close()


@pytest.mark.timeout(20)
def test_the_loop_polls_an_executor_that_asks_for_an_interval(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    setup = EngineRun(conn, tmp_path / "home", task("a"), task("b"))
    loop, executor = Loop(), PolledFake()
    executor.script("a", Script(runs=0.05))
    executor.script("b", Script(runs=0.05))
    run_loop(setup, loop, executor, RunnerStore(str(tmp_path / "spa.db")))
    assert setup.run()["status"] == states.SUCCESS
    assert setup.statuses() == {"a": states.SUCCESS, "b": states.SUCCESS}
    assert executor.polls >= 3  # woken by its interval: nothing else would have woken the loop


class SelfWakingFake(FakeExecutor):
    """Given the loop, it sets a deadline of its own for each attempt's end (as an executor
    that runs commands and watches their pipes would)."""

    def __init__(self) -> None:
        super().__init__(time.monotonic)
        self.loop: Loop | None = None

    def attach(self, loop: Any) -> None:
        self.loop = loop

    def start(self, launch: Any) -> Any:
        process = super().start(launch)
        assert self.loop is not None and process.ends_at is not None
        self.loop.timers.after(process.ends_at - time.monotonic(), lambda: None)
        return process


@pytest.mark.timeout(20)
def test_an_executor_handed_the_loop_wakes_it_itself(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    setup = EngineRun(conn, tmp_path / "home", task("a"))
    loop, executor = Loop(), SelfWakingFake()
    executor.script("a", Script(runs=0.05))
    run_loop(setup, loop, executor, RunnerStore(str(tmp_path / "spa.db")))
    assert executor.loop is loop and setup.run()["status"] == states.SUCCESS


class CountingStore(RunnerStore):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.opened = self.closed = 0

    def connection(self) -> sqlite3.Connection:
        if not self.is_open:
            self.opened += 1
        return super().connection()

    def close(self) -> None:
        if self.is_open:
            self.closed += 1
        super().close()


@pytest.mark.timeout(20)
def test_an_idle_loop_closes_the_store_and_opens_it_again_for_the_next_turn(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    setup = EngineRun(conn, tmp_path / "home", task("a"), task("b"))
    loop, executor = Loop(), SelfWakingFake()
    idle = RunnerStore.IDLE_CLOSE
    executor.script("a", Script(runs=idle * 5))  # the loop idles until a ends: it closes
    executor.script("b", Script(runs=idle / 10))  # a's end is followed at once: no close
    store = CountingStore(str(tmp_path / "spa.db"))
    run_loop(setup, loop, executor, store)
    assert setup.statuses() == {"a": states.SUCCESS, "b": states.SUCCESS}
    assert (store.opened, store.closed) == (2, 2)  # closed while a ran, and at the end


class AlwaysReadyFake(SelfWakingFake):
    """Its descriptor stays readable, as the pipe of a task that writes without pause does:
    every wait of the loop returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.ready, self._writer = os.pipe()
        os.write(self._writer, b"x")  # never read

    def wakeup_fd(self) -> int:
        return self.ready

    def close_pipe(self) -> None:
        os.close(self.ready)
        os.close(self._writer)


@pytest.mark.timeout(20)
def test_the_store_closes_once_unused_even_while_the_loop_never_idles(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    setup = EngineRun(conn, tmp_path / "home", task("a"))
    loop, executor = Loop(), AlwaysReadyFake()
    executor.script("a", Script(runs=RunnerStore.IDLE_CLOSE * 3))
    store = CountingStore(str(tmp_path / "spa.db"))
    try:
        run_loop(setup, loop, executor, store)
    finally:
        executor.close_pipe()
    assert setup.statuses() == {"a": states.SUCCESS}
    assert (store.opened, store.closed) == (2, 2)  # closed while a ran, and at the end
