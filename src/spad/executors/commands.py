"""Outside commands (Slurm's CLI) run from the runner's loop without ever blocking it.

Each call is a child process whose stdout and stderr the loop watches, with a deadline after
which it is killed and reported as timed out. Its pid is claimed in
:mod:`spad.executors.children`: the local executor's ``waitpid(-1)`` may reap it first, else
:meth:`Commands.reap` does. Standard library only: ``posix_spawnp``, no ``subprocess``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

from spad.executors import children
from spad.runner.timers import Timer, Timers


class Result:
    """How a command ended: ``code`` is None when it timed out or could not start."""

    __slots__ = ("code", "err", "out")

    def __init__(self, code: int | None, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err

    @property
    def ok(self) -> bool:
        return self.code == 0

    def why(self) -> str:
        """One line saying what went wrong, for a task's log."""
        text = (self.err or self.out).strip().replace("\n", "; ")
        return text or f"exit code {self.code}"


class _Call:
    def __init__(self, pid: int, done: Callable[[Result], None]) -> None:
        self.pid = pid
        self.done = done
        self.chunks: dict[int, list[bytes]] = {}  # stdout's fd, then stderr's
        self.open: set[int] = set()
        self.code: int | None = None
        self.reaped = False
        self.timer: Timer | None = None
        self.finished = False


class Commands:
    def __init__(
        self,
        timers: Timers,
        watch: Callable[[int, Callable[[], None]], None],
        unwatch: Callable[[int], None],
    ) -> None:
        self._timers = timers
        self._watch = watch
        self._unwatch = unwatch
        self._calls: dict[int, _Call] = {}  # pid -> call, until reaped
        self._stdin = os.open(os.devnull, os.O_RDONLY)

    def run(
        self,
        argv: list[str],
        env: dict[str, str],
        timeout: float,
        done: Callable[[Result], None],
    ) -> None:
        """Start ``argv``; ``done`` is called from the loop once it ended or timed out."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            pid = os.posix_spawnp(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, self._stdin, 0),
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                ],
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                setsigmask=(),
            )
        except OSError as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            done(Result(None, "", f"cannot run {argv[0]}: {exc.strerror or exc}"))
            return
        finally:
            os.close(out_w)
            os.close(err_w)
        call = _Call(pid, done)
        self._calls[pid] = call
        children.claim(pid, lambda code: self._reaped(pid, code))
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
            call.chunks[fd] = []
            call.open.add(fd)
            self._watch(fd, lambda fd=fd: self._read(call, fd))  # type: ignore[misc]
        call.timer = self._timers.after(timeout, lambda: self._timed_out(call, argv[0], timeout))

    def reap(self) -> None:
        """Reap the commands that ended (after each wake of the loop: SIGCHLD wakes it)."""
        children.reap(list(self._calls))

    def unreaped(self) -> int:
        """Commands started and not reaped yet."""
        return len(self._calls)

    def _reaped(self, pid: int, code: int) -> None:
        """``pid``, one of these commands, was reaped (told through :mod:`children`)."""
        call = self._calls.pop(pid, None)
        if call is None:
            return
        call.code, call.reaped = code, True
        self._maybe_finish(call)

    def _read(self, call: _Call, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                self._close(call, fd)
                self._maybe_finish(call)
                return
            call.chunks[fd].append(data)

    def _close(self, call: _Call, fd: int) -> None:
        self._unwatch(fd)
        os.close(fd)
        call.open.discard(fd)

    def _maybe_finish(self, call: _Call) -> None:
        if call.finished or not call.reaped or call.open:
            return
        call.finished = True
        if call.timer is not None:
            call.timer.cancel()
        out, err = (b"".join(c).decode(errors="replace") for c in call.chunks.values())
        call.done(Result(call.code, out, err))

    def _timed_out(self, call: _Call, command: str, timeout: float) -> None:
        if call.finished:
            return
        call.finished = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(call.pid, signal.SIGKILL)
        for fd in list(call.open):
            self._close(call, fd)
        call.done(Result(None, "", f"{command} gave no answer within {timeout:g} s"))
