"""Failed sign-ins in the audit trail, counted rather than one row each: a client guessing
tokens gets one row per window, whose count grows, so the trail shows the attempt without
a flood of rows (or a write per guess)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from spad.store import audit

#: One audit row per client and window.
WINDOW = 60.0
#: A row's count is brought up to date at most this often.
FLUSH_DELAY = 1.0


class _Window:
    __slots__ = ("count", "recorded", "row_id", "started")

    def __init__(self, row_id: int, started: float) -> None:
        self.row_id = row_id
        self.started = started
        self.count = 1
        self.recorded = 1


class FailedSignIns:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._windows: dict[str, _Window] = {}
        self._flush: asyncio.TimerHandle | None = None

    def failed(self, client: str, reason: str) -> None:
        now = time.monotonic()
        window = self._windows.get(client)
        if window is None or now - window.started > WINDOW:
            row_id = audit.record(
                self._conn, "sign_in", client, "refused: 1 failed sign-in", reason
            )
            self._windows[client] = _Window(row_id, now)
            self._forget_old(now)
            return
        window.count += 1
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Write the counts that grew since the last flush."""
        self._flush = None
        for window in self._windows.values():
            if window.count != window.recorded:
                audit.update_outcome(
                    self._conn, window.row_id, f"refused: {window.count} failed sign-ins"
                )
                window.recorded = window.count

    def _forget_old(self, now: float) -> None:
        if len(self._windows) > 1000:  # many clients: keep only the windows still open
            self.flush()
            self._windows = {
                client: w for client, w in self._windows.items() if now - w.started <= WINDOW
            }
