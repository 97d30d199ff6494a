"""Answers of reads kept while spa.db is unchanged.

A dashboard or a script asks ``status`` of the same workflow many times a second, and most
of those times nothing has changed. SQLite says whether anything has: ``PRAGMA
data_version`` moves when another connection (a runner, the event feed) commits, and the
connection's ``total_changes`` when it writes itself. While both stand still, an answer built
from the store is still true, and is given again without building it (the status of 300 tasks
costs 0.7 ms to build, its check a few microseconds).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Hashable

from spad.store.events import data_version

#: What the kept answers may hold together, in characters: an idle server keeps little.
MAX_CHARS = 1024 * 1024


class ReadCache:
    """Answers up to :data:`MAX_CHARS` together (the oldest make room), all let go at the
    first change of the store."""

    def __init__(self, conn: sqlite3.Connection, max_chars: int = MAX_CHARS) -> None:
        self._conn = conn
        self._max_chars = max_chars
        self._chars = 0
        self._version: tuple[int, int] | None = None
        self._answers: dict[Hashable, str] = {}

    def get(self, key: Hashable) -> str | None:
        """The answer kept for ``key``, or None when there is none or the store changed."""
        version = self._store_version()
        if version != self._version:
            self._answers.clear()
            self._chars = 0
            self._version = version
            return None
        return self._answers.get(key)

    def put(self, key: Hashable, answer: str) -> None:
        """Keep ``answer``, unless the store changed since the :meth:`get` that missed (the
        answer may then be built from the older or the newer state: not kept)."""
        if len(answer) > self._max_chars or self._store_version() != self._version:
            return
        self._chars -= len(self._answers.pop(key, ""))
        while self._chars + len(answer) > self._max_chars:
            self._chars -= len(self._answers.pop(next(iter(self._answers))))  # the oldest
        self._answers[key] = answer
        self._chars += len(answer)

    def _store_version(self) -> tuple[int, int]:
        return data_version(self._conn), self._conn.total_changes
