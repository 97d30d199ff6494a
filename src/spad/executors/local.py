"""Tasks as local processes: each in its own process group, output on a pipe, reaped by
``waitpid(-1)`` when SIGCHLD wakes the runner (the runner is a child subreaper, so orphaned
grandchildren are reaped here too).

Every task gets SIGKILL as its parent-death signal, so it dies with its runner. With the
``spad-exec`` helper (built by scripts/bootstrap) a task starts by ``posix_spawn`` — vfork
speed, and the runner never imports ``subprocess``; without it, ``subprocess`` sets the
signal between fork and exec, about twice as slow.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from spad import faults, procs
from spad.executors.base import Executor, Launch, TaskProcess

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from typing import Any


class LocalProcess(TaskProcess):
    pid: int

    def __init__(self, pid: int, output: int, popen: Any = None) -> None:
        self.pid: int = pid
        self.identity = procs.identity(pid)
        self.output = output
        self.ended = False
        self._popen = popen  # only on the fallback path: told of the reaping, not to wait again

    def signal(self, signum: int) -> None:
        procs.kill_group(self.pid, signum)

    def kill(self) -> None:
        # Descendants first: one that left the group (setsid) is still found through its parent.
        for pid in procs.descendants(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        procs.kill_group(self.pid, signal.SIGKILL)

    def alive(self) -> bool:
        return bool(procs.group_members(self.pid)) if self.ended else True

    def reaped(self, code: int) -> None:
        self.ended = True
        if self._popen is not None:
            self._popen.returncode = code


def find_helper() -> str | None:
    """``spad-exec`` beside this interpreter (scripts/bootstrap builds it), if there."""
    path = os.path.join(os.path.dirname(sys.executable), "spad-exec")
    return path if os.access(path, os.X_OK) else None


class LocalExecutor(Executor):
    def __init__(self, helper: str | None = None) -> None:
        self._running: dict[int, LocalProcess] = {}
        self._me = os.getpid()
        self._helper = helper
        self._stdin = os.open(os.devnull, os.O_RDONLY)  # opened once, not per task

    def start(self, launch: Launch) -> LocalProcess:
        read_end, write_end = os.pipe()
        try:
            if self._helper is not None and not faults.NO_KILL:
                pid, popen = self._spawn(launch, write_end), None
            else:
                popen = self._popen(launch, write_end)
                pid = popen.pid
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        process = LocalProcess(pid, read_end, popen)
        self._running[pid] = process
        return process

    def _spawn(self, launch: Launch, output: int) -> int:
        """``spad-exec`` sets the parent-death signal, enters the folder and execs the task."""
        assert self._helper is not None
        return os.posix_spawn(
            self._helper,
            [self._helper, str(self._me), launch.cwd, *launch.argv],
            launch.env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, self._stdin, 0),
                (os.POSIX_SPAWN_DUP2, output, 1),
                (os.POSIX_SPAWN_DUP2, output, 2),
            ],
            setpgroup=0,
        )

    def _popen(self, launch: Launch, output: int) -> Any:
        import subprocess  # the fallback only: the runner's usual path does without it

        preexec = None if faults.NO_KILL else (lambda: procs.die_with_parent(self._me))
        return subprocess.Popen(
            launch.argv,
            stdin=self._stdin,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=launch.cwd,
            env=launch.env,
            process_group=0,
            close_fds=True,
            preexec_fn=preexec,  # noqa: PLW1509 (the runner has no threads)
        )

    def collect(self) -> list[tuple[TaskProcess, int]]:
        ended: list[tuple[TaskProcess, int]] = []
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            process = self._running.pop(pid, None)
            if process is None:
                continue  # an orphan adopted by the subreaper: reaped, nothing to record
            code = os.waitstatus_to_exitcode(wait_status)
            process.reaped(code)
            ended.append((process, code))
        return ended
