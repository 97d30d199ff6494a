"""The executor seam: all the runner and the server know of where a task runs.

Standard library only (the runner imports it). The engine starts attempts, signals them, kills
them and collects their ends through these two classes and nothing else, so a cluster executor
(Slurm: ``sbatch``, ``scancel --signal``, ``sacct``) fits beside the local one:

- **start** returns a :class:`TaskProcess` with an ``identity`` (for the local executor the
  process's ``boot_id:start_time``; for a cluster, the job id) that the engine records.
- **output**: the executor owns a task's output. Locally it is a pipe whose descriptor the
  engine reads into the log; an executor whose task runs elsewhere leaves ``output`` None and
  writes the log itself to ``Launch.log_path`` (a file on a disk the nodes share).
- **waking the loop**: the runner's loop sleeps until something happens. An executor whose ends
  are seen on a descriptor gives it in :meth:`Executor.wakeup_fd`; one that polls a scheduler
  gives :meth:`Executor.poll_interval`; one that needs more (a descriptor per command it runs,
  deadlines of its own) is handed the loop itself in :meth:`Executor.attach`. After every
  wake, whatever woke it, the loop calls :meth:`Executor.collect`. (The local executor needs
  none of these: SIGCHLD wakes the loop.)
- **cleanup**: after an attempt ended the engine calls :meth:`TaskProcess.cleanup`, which ends
  what the attempt left behind (locally: the rest of its process group).
- **reclaim**: when a runner died, the server calls :meth:`Executor.reclaim` with each task's
  recorded pid and identity, to end what that runner can no longer end itself.
- **close**: at the runner's end, whatever is still the executor's to end.

An executor is one module defining a subclass of :class:`Executor` named ``EXECUTOR``, and one
line in :data:`spad.executors.REGISTRY`. Nothing in the engine, the loop or the server changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from typing import Any


class Launch:
    """Everything needed to start one attempt of a task."""

    __slots__ = ("argv", "cwd", "env", "executor_args", "log_path")

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        log_path: str,
        executor_args: list[str] | None = None,
    ) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        #: Where the attempt's output goes. An executor that gives no ``output`` descriptor
        #: writes it there itself (making the folder, which may not exist yet).
        self.log_path = log_path
        #: The task's own arguments for its executor (``slurm_args``).
        self.executor_args = executor_args or []


class TaskProcess(ABC):
    """One running attempt."""

    #: Local pid (the process group leader), or None where the task runs elsewhere.
    pid: int | None = None
    #: What names the attempt across processes and restarts: recorded with the pid (see
    #: :mod:`spad.procs`), or a cluster's job id. Given back to :meth:`Executor.reclaim`.
    identity: str | None = None
    #: A file descriptor carrying the task's stdout and stderr, for the runner to log; None when
    #: the executor writes ``Launch.log_path`` itself.
    output: int | None = None
    #: A scheduler's job id, once it gave one (None for a local process).
    job: str | None = None
    #: Submitted and waiting for a scheduler to start it (never for a local process).
    queued: bool = False
    #: Seconds the whole task may take to end after :meth:`kill` before it is called immortal
    #: (None: the runner's own, for a local process group).
    kill_wait: float | None = None

    @abstractmethod
    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole task (all its processes)."""

    @abstractmethod
    def kill(self) -> None:
        """Kill the whole task now, including processes that left its group."""

    def cleanup(self) -> None:  # noqa: B027 (a hook: most executors have nothing left to end)
        """The attempt ended (it was collected): end what it left behind."""


class Executor(ABC):
    #: The name a definition gives (``"executor": "local"``), as registered.
    name: str = ""

    @classmethod
    def for_home(cls, home: str) -> Executor:
        """The executor for a runner or server of ``home`` (where its configuration lives)."""
        return cls()

    @abstractmethod
    def start(self, launch: Launch) -> TaskProcess:
        """Start an attempt; raise OSError when it cannot start (FileNotFoundError: exit code
        127, any other: 126)."""

    @abstractmethod
    def collect(self) -> list[tuple[TaskProcess, int]]:
        """Attempts that ended since the last call, each with its exit code (``-N`` when
        signal N ended it). Called after every wake of the loop; must not block."""

    def progress(self) -> list[TaskProcess]:
        """Attempts whose ``job`` or ``queued`` changed since the last call (a scheduler's);
        called after every wake, before :meth:`collect`."""
        return []

    def attach(self, loop: Any) -> None:  # noqa: B027 (a hook: most executors need no more)
        """The runner's loop, before the first start: ``loop.watch(fd, callback)``,
        ``loop.unwatch(fd)`` and ``loop.timers.after(seconds, action)`` (a cancellable
        :class:`spad.runner.timers.Timer`). Callbacks run inside the loop's turn; the engine's
        collect() follows each turn."""

    def wakeup_fd(self) -> int | None:
        """A descriptor that becomes readable when an attempt may have ended, or None."""
        return None

    def poll_interval(self) -> float | None:
        """Seconds between calls of :meth:`collect` when nothing else wakes the loop (for an
        executor that polls a scheduler), or None."""
        return None

    @abstractmethod
    def reclaim(self, pid: int | None, identity: str | None) -> None:
        """End what a dead runner left of an attempt it recorded (``pid`` and ``identity`` as
        the attempt's :class:`TaskProcess` had them). Called by the server; must check the
        identity, so that a reused pid or job id is never touched."""

    def close(self) -> None:  # noqa: B027 (a hook: most executors have nothing left to end)
        """The runner is ending: end whatever is still this executor's."""
