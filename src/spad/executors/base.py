"""The executor seam: how a task's process is started, signalled and seen to end.

The runner only talks to these two classes, so a cluster executor (Slurm: ``sbatch``,
``scancel --signal``, ``sacct``) fits beside the local one: a task whose process lives on another
machine has no local pid, its ``output`` may be None (the log is written where it runs), and
``collect`` polls instead of reaping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Launch:
    """Everything needed to start one attempt of a task."""

    __slots__ = ("argv", "cwd", "env", "log_path")

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log_path


class TaskProcess(ABC):
    """One running attempt."""

    #: Local pid (the process group leader), or None where the task runs elsewhere.
    pid: int | None = None
    #: Identity recorded with the pid (see :mod:`spad.procs`), or an executor's job id.
    identity: str | None = None
    #: A file descriptor carrying the task's stdout and stderr, for the runner to log; None when
    #: the executor writes the log itself.
    output: int | None = None

    @abstractmethod
    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole task (all its processes)."""

    @abstractmethod
    def kill(self) -> None:
        """Kill the whole task now, including processes that left its group."""

    @abstractmethod
    def alive(self) -> bool:
        """Whether any of the task's processes still runs."""


class Executor(ABC):
    @abstractmethod
    def start(self, launch: Launch) -> TaskProcess:
        """Start an attempt; raise OSError when it cannot start."""

    @abstractmethod
    def collect(self) -> list[tuple[TaskProcess, int]]:
        """Attempts that ended since the last call, each with its exit code
        (``-N`` when signal N ended it)."""
