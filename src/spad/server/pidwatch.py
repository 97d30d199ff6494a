"""Watch processes end through pidfds: readable when the process exits, child or not."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable

ExitCallback = Callable[[int | None], None]


class PidWatch:
    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._watched: dict[int, int] = {}  # pidfd -> pid

    def adopt_child(self, child: subprocess.Popen[bytes]) -> None:
        """A child of ours: reaped here when it ends, its exit code passed on."""
        self._children[child.pid] = child

    def watch(self, pid: int, on_exit: ExitCallback) -> None:
        """Call ``on_exit(exit code, or None when not our child)`` when ``pid`` ends."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            on_exit(self._reap(pid))
            return
        loop = asyncio.get_running_loop()

        def ended() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._watched.pop(pidfd, None)
            on_exit(self._reap(pid))

        self._watched[pidfd] = pid
        loop.add_reader(pidfd, ended)

    def _reap(self, pid: int) -> int | None:
        child = self._children.pop(pid, None)
        return child.wait() if child is not None else None

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for pidfd in list(self._watched):
            loop.remove_reader(pidfd)
            os.close(pidfd)
        self._watched.clear()
