"""Tasks as local processes: each in its own process group, output on a pipe, reaped by
``waitpid(-1)`` when SIGCHLD wakes the runner (the runner is a child subreaper, so orphaned
grandchildren are reaped here too)."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys

from spad import faults, procs
from spad.executors.base import Executor, Launch, TaskProcess


class LocalProcess(TaskProcess):
    def __init__(self, popen: subprocess.Popen[bytes], output: int) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.identity = procs.identity(popen.pid)
        self.output = output
        self.ended = False

    def signal(self, signum: int) -> None:
        procs.kill_group(self.popen.pid, signum)

    def kill(self) -> None:
        # Descendants first: one that left the group (setsid) is still found through its parent.
        for pid in procs.descendants(self.popen.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        procs.kill_group(self.popen.pid, signal.SIGKILL)

    def alive(self) -> bool:
        return bool(procs.group_members(self.popen.pid)) if self.ended else True


def find_helper() -> str | None:
    """``spad-exec`` beside this interpreter (scripts/bootstrap builds it), if there."""
    path = os.path.join(os.path.dirname(sys.executable), "spad-exec")
    return path if os.access(path, os.X_OK) else None


class LocalExecutor(Executor):
    """Each task dies with its runner (SIGKILL as its parent-death signal): set by the
    ``spad-exec`` helper when it is there (spawn by vfork), else between fork and exec."""

    def __init__(self, helper: str | None = None) -> None:
        self._running: dict[int, LocalProcess] = {}
        self._me = os.getpid()
        self._helper = None if faults.NO_KILL else helper
        self._stdin = os.open(os.devnull, os.O_RDONLY)  # opened once, not per task

    def start(self, launch: Launch) -> LocalProcess:
        argv, preexec = launch.argv, None
        if self._helper is not None:
            argv = [self._helper, str(self._me), *launch.argv]
        elif not faults.NO_KILL:
            preexec = functools.partial(procs.die_with_parent, self._me)
        read_end, write_end = os.pipe()
        try:
            popen = subprocess.Popen(
                argv,
                stdin=self._stdin,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                cwd=launch.cwd,
                env=launch.env,
                process_group=0,
                close_fds=True,
                preexec_fn=preexec,  # noqa: PLW1509 (the runner has no threads)
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        process = LocalProcess(popen, read_end)
        self._running[popen.pid] = process
        return process

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
            process.popen.returncode = code  # reaped here: Popen must not wait for it again
            process.ended = True
            ended.append((process, code))
        return ended
