"""Tasks as local processes: each in its own process group, output on a pipe, reaped by
``waitpid(-1)`` when SIGCHLD wakes the runner (the runner is a child subreaper, so orphaned
grandchildren are reaped here too).

Every task gets SIGKILL as its parent-death signal, so it dies with its runner. With the spawn
library (``spawn.c``, built into the package by setup.py) a task starts in one vfork and one
exec, as fast as ``posix_spawn``, and the runner never imports ``subprocess``; without it,
``subprocess`` sets the signal between a full fork and exec, about three times as slow.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import time

from spad import faults, procs
from spad.executors import children
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

    def cleanup(self) -> None:
        """What the task left running in its group ends with it."""
        self.kill()

    def reaped(self, code: int) -> None:
        self.ended = True
        if self._popen is not None:
            self._popen.returncode = code


#: Every signal whose disposition can be set (glibc keeps its own two out of this set).
_RESETTABLE = tuple(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})

#: The compiled ``spawn.c``, built beside this module by the package's build (setup.py).
LIBRARY = os.path.join(os.path.dirname(__file__), "libspawn.so")


class Spawner:
    """``spad_spawn`` from the compiled ``spawn.c``: vfork, parent-death signal, group, exec."""

    def __init__(self, path: str) -> None:
        function = ctypes.CDLL(path, use_errno=True).spad_spawn
        strings = ctypes.POINTER(ctypes.c_char_p)
        function.argtypes = [
            ctypes.c_char_p,
            strings,
            strings,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
        ]
        function.restype = ctypes.c_int
        self._spawn = function

    def __call__(self, launch: Launch, stdin: int, output: int, parent: int) -> int:
        path = os.fsencode(launch.argv[0])
        argv = _strings([os.fsencode(arg) for arg in launch.argv])
        envp = _strings([f"{key}={value}".encode() for key, value in launch.env.items()])
        pid: int = self._spawn(path, argv, envp, os.fsencode(launch.cwd), stdin, output, parent)
        if pid < 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        return pid


def _strings(items: list[bytes]) -> Any:
    """A NULL-terminated ``char *[]``."""
    return (ctypes.c_char_p * (len(items) + 1))(*items)


@functools.cache
def find_spawner() -> Spawner | None:
    """The compiled spawn library, if the build found a compiler: loaded once per process (a
    runner forked by the fork server finds it loaded there)."""
    try:
        return Spawner(LIBRARY)
    except (OSError, AttributeError):
        return None


class LocalExecutor(Executor):
    """Output on a pipe the engine reads; SIGCHLD wakes the loop, so no wake-up of its own."""

    name = "local"

    def __init__(self, spawner: Spawner | None = None) -> None:
        self._running: dict[int, LocalProcess] = {}
        self._me = os.getpid()
        self._spawner = spawner
        self._stdin = -1  # /dev/null, opened at the first start, once

    @classmethod
    def for_home(cls, home: str) -> LocalExecutor:
        return cls(find_spawner())

    def start(self, launch: Launch) -> LocalProcess:
        if self._stdin < 0:
            self._stdin = os.open(os.devnull, os.O_RDONLY)
        read_end, write_end = os.pipe()
        try:
            if self._spawner is not None:
                parent = 0 if faults.NO_KILL else self._me
                pid, popen = self._spawner(launch, self._stdin, write_end, parent), None
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
        if faults.RECORD_DELAY:
            time.sleep(faults.RECORD_DELAY)
        return process

    def _popen(self, launch: Launch, output: int) -> Any:
        import subprocess  # the fallback only: the runner's usual path does without it

        parent = self._me

        def prepare() -> None:  # in the child, between fork and exec
            for signum in _RESETTABLE:  # handled or ignored here, the default for the task
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            if not faults.NO_KILL:
                procs.die_with_parent(parent)

        return subprocess.Popen(
            launch.argv,
            stdin=self._stdin,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=launch.cwd,
            env=launch.env,
            process_group=0,
            close_fds=True,
            preexec_fn=prepare,  # noqa: PLW1509 (the runner has no threads)
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
            code = os.waitstatus_to_exitcode(wait_status)
            if process is None:
                # Another executor's command (Slurm's), or an orphan the subreaper adopted.
                children.reaped(pid, code)
                continue
            process.reaped(code)
            ended.append((process, code))
        return ended

    def reclaim(self, pid: int | None, identity: str | None) -> None:
        """The group the task led, when it is still that task's (see
        :func:`spad.procs.kill_recorded_group`)."""
        if pid:
            procs.kill_recorded_group(pid, identity)

    def close(self) -> None:
        """Whatever a task left behind outside its group (adopted by the runner, a child
        subreaper) ends with the runner; its /dev/null is closed (a process that goes on, the
        fork server after its rehearsal, would leave it to every runner it forks)."""
        if self._stdin >= 0:
            os.close(self._stdin)
            self._stdin = -1
        if faults.NO_KILL:
            return
        for pid in procs.descendants(self._me):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


EXECUTOR = LocalExecutor
