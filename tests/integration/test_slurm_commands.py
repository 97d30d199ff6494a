"""Slurm's commands run from the runner's loop: real child processes, bounded by a deadline."""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable

from spad.executors import children
from spad.executors.commands import Commands, Result
from spad.runner.timers import Timers


class MiniLoop:
    """The runner loop's parts that Commands uses: a selector, timers, and reaping."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.timers = Timers()
        self.commands = Commands(self.timers, self.watch, self.unwatch)

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def unwatch(self, fd: int) -> None:
        self.selector.unregister(fd)

    def run_until(self, done: Callable[[], bool], limit: float = 10.0) -> float:
        started = time.monotonic()
        while not done():
            assert time.monotonic() - started < limit, "the command never reported"
            timeout = self.timers.timeout()
            for key, _ in self.selector.select(min(timeout if timeout is not None else 0.05, 0.05)):
                key.data()
            self.timers.run_due()
            self._reap()
        return time.monotonic() - started

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.reaped(pid, os.waitstatus_to_exitcode(status))


def test_a_command_s_output_and_exit_code_reach_the_loop() -> None:
    loop = MiniLoop()
    results: list[Result] = []
    loop.commands.run(
        ["sh", "-c", "echo out; echo err >&2; exit 3"], dict(os.environ), 10, results.append
    )
    loop.run_until(lambda: bool(results))
    assert (results[0].code, results[0].out, results[0].err) == (3, "out\n", "err\n")
    assert not results[0].ok and results[0].why() == "err"


def test_a_command_that_does_not_answer_is_cut_at_its_deadline() -> None:
    loop = MiniLoop()
    results: list[Result] = []
    loop.commands.run(["sleep", "30"], dict(os.environ), 0.3, results.append)
    elapsed = loop.run_until(lambda: bool(results))
    assert results[0].code is None and "no answer within 0.3 s" in results[0].why()
    assert elapsed < 5
    loop.run_until(lambda: not loop.commands.unreaped())  # the killed child is reaped too


def test_a_command_that_cannot_start_says_so() -> None:
    loop = MiniLoop()
    results: list[Result] = []
    loop.commands.run(["no-such-command-here"], dict(os.environ), 1, results.append)
    assert results[0].code is None and "cannot run no-such-command-here" in results[0].why()
