"""The server's keeper of the alarm watcher (:mod:`spad.alarms.watcher`, which does the
watching): it runs beside the server as a process of its own (so it never slows the server),
dies with it (parent-death signal) and is started again if it ends."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys

from spad import procs
from spad.home import Home
from spad.server.pidwatch import PidWatch

log = logging.getLogger("spad.alarms")
MAX_BACKOFF = 60.0


class AlarmWatcher:
    def __init__(self, home: Home) -> None:
        self.home = home
        self._pids = PidWatch()
        self._child: subprocess.Popen[bytes] | None = None
        self._delay = 0.5
        self._closing = False
        self._restart: asyncio.TimerHandle | None = None

    def ensure_running(self) -> None:
        """Start the watcher unless it runs (or is about to start again)."""
        if self._child is None and not self._closing:
            self.start()

    def start(self) -> None:
        self._restart = None
        me = os.getpid()
        # Its messages (a source away, a hook that failed) go where spad's own go.
        self._child = subprocess.Popen(
            [sys.executable, "-m", "spad.alarms.watcher", str(self.home.root)],
            stdin=subprocess.DEVNULL,
            close_fds=True,
            cwd=self.home.root,
            preexec_fn=lambda: procs.die_with_parent(me),  # noqa: PLW1509 (before threads)
        )
        self._pids.adopt_child(self._child)
        self._pids.watch(self._child.pid, self._ended)

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    def _ended(self, code: int | None) -> None:
        if self._closing:
            return
        log.warning("the alarm watcher ended (%s): starting it again in %.1f s", code, self._delay)
        self._restart = asyncio.get_running_loop().call_later(self._delay, self.start)
        self._delay = min(self._delay * 2, MAX_BACKOFF)

    def close(self) -> None:
        self._closing = True
        if self._restart is not None:
            self._restart.cancel()
        self._pids.close()
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGTERM)
            try:
                self._child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
