"""The runner's signals: handlers only enqueue (through the wakeup pipe); the loop acts.

SIGUSR1 asks for a graceful stop, SIGUSR2 for a forced one; SIGTERM, SIGINT and SIGHUP end the
runner hard; SIGCHLD says a child may have ended.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C half: see set_handler
import os
import signal
from collections.abc import Callable

GRACEFUL = signal.SIGUSR1
FORCED = signal.SIGUSR2
HARD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
WATCHED = (GRACEFUL, FORCED, signal.SIGCHLD, *HARD)


class SignalInbox:
    """A pipe the kernel writes signal numbers into; the loop selects on :meth:`fileno`."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        for end in (self._read, self._write):
            os.set_blocking(end, False)
        for signum in WATCHED:
            set_handler(signum, _enqueue_only)
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def fileno(self) -> int:
        return self._read

    def close(self) -> None:
        """The signals back to their defaults, the pipe closed: for a process that goes on
        after carrying out a run (the fork server's rehearsal); a runner never needs it."""
        signal.set_wakeup_fd(-1)
        for signum in WATCHED:
            set_handler(signum, signal.SIG_DFL)
        os.close(self._read)
        os.close(self._write)

    def drain(self) -> list[int]:
        received: list[int] = []
        while True:
            try:
                data = os.read(self._read, 512)
            except BlockingIOError:
                return received
            if not data:
                return received
            received.extend(data)


def _enqueue_only(signum: int, frame: object) -> None:
    """The wakeup fd already carries ``signum``; nothing else to do here."""


def set_handler(signum: int, handler: Callable[[int, object], None] | int) -> None:
    """``signal.signal`` without its enum conversions: it turns the handler it returns into
    an enum member, and in a runner forked from the fork server that alone copies about 150
    KiB of shared pages (bench/fork_pages.py). ``_signal`` is the C half it wraps."""
    _signal.signal(int(signum), int(handler) if isinstance(handler, int) else handler)
