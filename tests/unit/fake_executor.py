"""An executor whose processes live in memory and do what their script says.

The second user of the executor seam (the local executor is the first): registered by one line
(``executors.REGISTRY["fake"] = __name__``), it drives the engine through every rule of the
contract without a process, on a clock the test moves.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from spad.executors.base import Executor, Launch, TaskProcess


@dataclass(frozen=True)
class Script:
    """What one attempt does. Without a signal it ends after ``runs`` seconds with ``code``
    (``runs`` None: never by itself)."""

    runs: float | None = 0.0
    code: int = 0
    #: Written to the attempt's log at its start.
    output: bytes = b""
    #: Signals it survives (as a task that traps SIGTERM).
    ignores: frozenset[int] = frozenset()
    #: Survives SIGKILL too: a process stuck in the kernel.
    immortal: bool = False
    #: Raised by start() instead of starting (FileNotFoundError: 127, other OSError: 126).
    cannot_start: OSError | None = None


class FakeProcess(TaskProcess):
    def __init__(self, task: str, attempt: int, script: Script, clock: Callable[[], float]):
        self.task = task
        self.attempt = attempt
        self.script = script
        self.identity = f"fake:{task}:{attempt}"
        self.clock = clock
        self.started = clock()
        #: Signals received, in order.
        self.received: list[int] = []
        #: When it ends (None: not by itself) and with which code.
        self.ends_at = None if script.runs is None else self.started + script.runs
        self.code = script.code
        self.cleaned = False

    def signal(self, signum: int) -> None:
        self.received.append(signum)
        survives = signum in self.script.ignores and signum != signal.SIGKILL
        if survives or (signum == signal.SIGKILL and self.script.immortal):
            return
        now = self.clock()
        if self.ends_at is None or self.ends_at > now:
            self.ends_at, self.code = now, -signum

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def cleanup(self) -> None:
        self.cleaned = True


class FakeExecutor(Executor):
    """Attempts are scripted per task name; the last script of a task repeats."""

    name = "fake"

    def __init__(self, clock: Callable[[], float] = lambda: 0.0) -> None:
        self.clock = clock
        self.scripts: dict[str, list[Script]] = {}
        #: Every attempt started, in order.
        self.started: list[FakeProcess] = []
        self.reclaimed: list[tuple[int | None, str | None]] = []
        self.closed = False
        self._running: list[FakeProcess] = []

    def script(self, task: str, *attempts: Script) -> None:
        self.scripts[task] = list(attempts)

    def start(self, launch: Launch) -> FakeProcess:
        task = launch.env["SPA_TASK"]
        attempt = int(launch.env["SPA_ATTEMPT"])
        plan = self.scripts.get(task) or [Script()]
        script = plan[min(attempt, len(plan)) - 1]
        if script.cannot_start is not None:
            raise script.cannot_start
        process = FakeProcess(task, attempt, script, self.clock)
        if script.output:  # the executor owns the output: written where Launch says
            os.makedirs(os.path.dirname(launch.log_path), exist_ok=True)
            with open(launch.log_path, "ab") as log:
                log.write(script.output)
        self.started.append(process)
        self._running.append(process)
        return process

    def next_end(self) -> float | None:
        """When the next running attempt ends, if any is due to."""
        ends = [p.ends_at for p in self._running if p.ends_at is not None]
        return min(ends) if ends else None

    def collect(self) -> list[tuple[TaskProcess, int]]:
        now = self.clock()
        ended = [p for p in self._running if p.ends_at is not None and p.ends_at <= now]
        for process in ended:
            self._running.remove(process)
        return [(process, process.code) for process in ended]

    def running(self) -> list[FakeProcess]:
        return list(self._running)

    def reclaim(self, pid: int | None, identity: str | None) -> None:
        self.reclaimed.append((pid, identity))

    def close(self) -> None:
        self.closed = True


EXECUTOR = FakeExecutor
