"""The runner's signals: handlers only enqueue (through the wakeup pipe); the loop acts.

SIGUSR1 asks for a graceful stop, SIGUSR2 for a forced one; SIGTERM, SIGINT and SIGHUP end the
runner hard; SIGCHLD says a child may have ended.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal's C half: see set_handler
import os
import signal
from collections.abc import Callable

#: A signal's handler: a function, or ``SIG_DFL`` / ``SIG_IGN``.
Handler = Callable[[int, object], None] | int

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
        #: What each signal was handled by before: :meth:`close` gives it back.
        self._before = {signum: set_handler(signum, _enqueue_only) for signum in WATCHED}
        self._wakeup_before = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def fileno(self) -> int:
        return self._read

    def close(self) -> None:
        """The signals handled as before, the pipe closed: for a process that goes on after
        carrying out a run (the fork server's rehearsal); a runner never needs it."""
        signal.set_wakeup_fd(self._wakeup_before)
        for signum, handler in self._before.items():
            # None: a handler set outside Python, which Python cannot set again.
            set_handler(signum, signal.SIG_DFL if handler is None else handler)
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


def set_handler(signum: int, handler: Handler) -> Handler | None:
    """``signal.signal`` without its enum conversions: it turns the handler it returns into
    an enum member, and in a runner forked from the fork server that alone copies about 150
    KiB of shared pages (bench/fork_pages.py). ``_signal`` is the C half it wraps. Returns
    the handler before (``SIG_DFL`` and ``SIG_IGN`` as plain numbers, None for one set outside
    Python)."""
    before: Handler | None = _signal.signal(
        int(signum), int(handler) if isinstance(handler, int) else handler
    )
    return before
