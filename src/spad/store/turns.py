"""The runner's spa.db: opened when a statement needs it, closed while the runner idles; the
writes of one loop turn made together at its end, and made again until they commit, so a
store that refuses them for a while never ends the run.

Inside a turn a write (``INSERT``, ``UPDATE``, ``DELETE``, ``REPLACE``) is only kept; the
turn's end makes the kept writes in one ``BEGIN IMMEDIATE`` transaction. The write lock is so
held for the writes alone, never while the engine works: with a thousand runners stopping at
once, a lock held across each runner's turn (and across its being scheduled out on a busy
machine) made every other writer, the server first, sleep in SQLite's busy wait. A read
inside a turn first makes the writes kept so far, so the engine always reads what it wrote
(a turn that reads after writing commits twice: the common turns do not, and a stop reads the
waiting tasks before it writes).
A write's result is not known inside a turn (:data:`KEPT`: ``rowcount`` -1, no rows), and the
engine uses none. A lock is waited out (a runner waits rather than dies); a full disk ends the
runner (:class:`StoreFull`), which the server resumes as a new run once it can write.
Standard library only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator

from spad import freed
from spad.store.sqlite import FULL, begin_immediate, connect_as, trouble

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


class StoreFull(Exception):
    """spa.db cannot be written: its disk is full."""


#: The statements a turn keeps for its end; any other is a read, made at once.
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Kept:
    """What a write kept for its turn's end gives back: its result is not known yet."""

    rowcount = -1
    lastrowid = None

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


KEPT = Kept()


class RunnerStore:
    """The runner's connection to spa.db, opened by the first statement that needs it and closed
    by the loop once no statement has needed it for :data:`IDLE_CLOSE` seconds.

    An open connection holds shared locks on spa.db and its ``-shm`` for as long as it lives,
    and the kernel walks all of a file's locks on every lock call (and at every exec of a
    task, which closes the inherited descriptors): a thousand idle runners holding theirs made
    each write of the others pay for a thousand (W8, bench/scale.py). The connection's page
    cache, schema and statements are also private memory of each runner. Opening it again
    costs about 0.4 ms (most of it loading the schema), so a turn that needs no statement (a
    task's output, a timer that only signals) does not open it: a runner whose task prints a
    line every second opened spa.db at each line before.
    """

    #: Seconds without a statement before the connection is closed: long enough that a run
    #: whose tasks end one after another keeps it, short enough that a started run soon lets go.
    IDLE_CLOSE = 0.2

    def __init__(self, path: str, cache_kib: int = 128) -> None:
        self.path = path
        self.cache_kib = cache_kib
        self._conn: sqlite3.Connection | None = None
        self._kept: list[tuple[str, Any]] | None = None
        self._used = 0.0  # time.monotonic() of the last statement

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def close_in(self) -> float | None:
        """Seconds until the open connection has gone unused for :data:`IDLE_CLOSE` (0 when it
        has); None when it is closed."""
        if self._conn is None:
            return None
        return max(0.0, self._used + self.IDLE_CLOSE - time.monotonic())

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor | Kept:
        kept = self._kept
        if kept is not None and sql.lstrip()[:7].upper().startswith(WRITES):
            kept.append((sql, parameters))
            return KEPT  # a write's result is not known before the turn's end
        if kept:  # a read sees what this turn wrote before it
            self._write(kept)
            kept.clear()
        conn = self.connection()
        try:
            return conn.execute(sql, parameters)
        finally:
            self._used = time.monotonic()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """The writes made inside, committed together when it ends. A turn that raised makes
        none of the writes it still kept (those a read inside it made are made)."""
        if self._kept is not None:
            raise RuntimeError("a turn inside a turn would reorder the writes")
        kept: list[tuple[str, Any]] = []
        self._kept = kept
        try:
            yield
        finally:
            self._kept = None
        if kept:
            self._write(kept)
            self._used = time.monotonic()

    def close(self) -> None:
        """Close the connection and give its freed memory back to the system."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            freed.give_back()  # an idle runner has no later to keep freed memory for

    def connection(self) -> sqlite3.Connection:
        """The connection, opened now if it is closed."""
        if self._conn is None:
            self._conn = connect_as(
                sqlite3.Connection, self.path, cache_kib=self.cache_kib, wal=False
            )
        return self._conn

    def _write(self, kept: list[tuple[str, Any]]) -> None:
        """Until the kept writes commit: each try waits up to the busy timeout for the lock.
        The connection is opened inside the tries: a store busy while it loads its schema is
        waited out too, for the engine has already acted on what these writes record."""
        said = False
        while (refusal := self._try_once(kept)) is not None:
            if trouble(refusal) == FULL:
                raise StoreFull(str(refusal))
            if not said:
                say(f"spa.db refused a write ({refusal}): waiting to write it again")
                said = True
        if said:
            say("spa.db written again: going on")

    def _try_once(self, kept: list[tuple[str, Any]]) -> sqlite3.OperationalError | None:
        conn: sqlite3.Connection | None = None
        try:
            conn = self.connection()
            begin_immediate(conn)
            for sql, parameters in kept:
                conn.execute(sql, parameters)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn is not None and conn.in_transaction:  # a full disk may have rolled it back
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and trouble(exc):
                return exc
            raise
        return None


def patiently(write: Callable[[], T]) -> T:
    """``write()`` (a write committed by itself) until the store takes it: a lock is waited
    out; a full disk raises :class:`StoreFull`."""
    said = False
    while True:
        try:
            return write()
        except sqlite3.OperationalError as exc:
            kind = trouble(exc)
            if kind is None:
                raise
            if kind == FULL:
                raise StoreFull(str(exc)) from None
            if not said:
                say(f"spa.db refused a write ({exc}): waiting to write it again")
                said = True


def say(message: str) -> None:
    """A line for runners.log; a full disk must not end the runner over its own message."""
    with contextlib.suppress(OSError):
        print(f"spad runner: {message}", file=sys.stderr, flush=True)
