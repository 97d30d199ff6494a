"""``[hooks] on_change``: ``bin/<name>`` gets each workflow transition as JSON on stdin.

The server never waits for a hook: transitions go into a bounded queue, and one task runs the
hooks in order, each in a session of its own and killed (its whole group) at the timeout. When
hooks fall more than ``QUEUE`` transitions behind, the newest are dropped and the log says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3

from spad import procs
from spad.home import Home

log = logging.getLogger("spad.hooks")

QUEUE = 1000


class ChangeHook:
    def __init__(self, home: Home, name: str, timeout: float) -> None:
        self.home = home
        self.name = name
        self.timeout = timeout
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE)
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._dropped = 0

    def on_events(self, rows: list[sqlite3.Row]) -> None:
        """The feed's listener: queue the workflow transitions."""
        for row in rows:
            if row["kind"] != "workflow":
                continue
            event = {"id": row["id"], **json.loads(row["data"])}
            try:
                self._queue.put_nowait(json.dumps(event).encode() + b"\n")
            except asyncio.QueueFull:
                if self._dropped == 0:
                    log.warning("on_change hook bin/%s is behind: dropping transitions", self.name)
                self._dropped += 1

    async def _run(self) -> None:
        while True:
            payload = await self._queue.get()
            if self._queue.empty() and self._dropped:
                log.warning("on_change hook: %d transitions were dropped", self._dropped)
                self._dropped = 0
            try:
                await self._call(payload)
            except OSError as exc:
                log.warning("on_change hook bin/%s failed to start: %s", self.name, exc)

    async def _call(self, payload: bytes) -> None:
        hook = self.home.executable(self.name)
        if hook is None:
            log.warning("on_change hook bin/%s is not an executable: skipped", self.name)
            return
        process = await asyncio.create_subprocess_exec(
            str(hook),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=self.home.data,
            start_new_session=True,
            env=dict(os.environ, SPA_HOME=str(self.home.root)),
        )
        try:
            await asyncio.wait_for(self._feed(process, payload), self.timeout)
        except TimeoutError:
            log.warning("on_change hook bin/%s ran over %g s: killed", self.name, self.timeout)
            procs.kill_group(process.pid)
            await process.wait()

    @staticmethod
    async def _feed(process: asyncio.subprocess.Process, payload: bytes) -> None:
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(payload)
            await process.stdin.drain()
            process.stdin.close()
        await process.wait()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
