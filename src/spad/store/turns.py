"""The runner's connection to spa.db: the writes of one loop turn are made together at its
end, and made again until they commit, so a store that refuses them for a while never ends
the run.

Inside a turn a write (``INSERT``, ``UPDATE``, ``DELETE``, ``REPLACE``) is only kept; the
turn's end makes the kept writes in one ``BEGIN IMMEDIATE`` transaction. The write lock is so
held for the writes alone, never while the engine works: with a thousand runners stopping at
once, a lock held across each runner's turn (and across its being scheduled out on a busy
machine) made every other writer, the server first, sleep in SQLite's busy wait. A read
inside a turn first makes the writes kept so far, so the engine always reads what it wrote
(a turn that reads after writing commits twice: the common turns do not, and a stop reads the
waiting tasks before it writes).
A write's result is not known inside a turn: it returns an empty cursor (``rowcount`` -1),
and the engine uses none. A lock is waited out (a runner waits rather than dies); a full disk
ends the runner (:class:`StoreFull`), which the server resumes as a new run once it can
write. Standard library only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Callable, Iterator

from spad import freed
from spad.store.sqlite import FULL, connect_as, trouble

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


class StoreFull(Exception):
    """spa.db cannot be written: its disk is full."""


#: The statements a turn keeps for its end; any other is a read, made at once.
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class TurnStore(sqlite3.Connection):
    """A connection whose writes inside :meth:`turn` are kept and made at the turn's end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: list[tuple[str, Any]] | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        kept = self._kept
        if kept is None:
            return super().execute(sql, parameters)
        if sql.lstrip()[:7].upper().startswith(WRITES):
            kept.append((sql, parameters))
            return self.cursor()  # a write's result is not known before the turn's end
        if kept:  # a read sees what this turn wrote before it
            self._write(kept)
            kept.clear()
        return super().execute(sql, parameters)

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

    def _write(self, kept: list[tuple[str, Any]]) -> None:
        """Until the kept writes commit: each try waits up to the busy timeout for the lock."""
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
        try:
            super().execute("BEGIN IMMEDIATE")
            for sql, parameters in kept:
                super().execute(sql, parameters)
            super().execute("COMMIT")
        except BaseException as exc:
            if self.in_transaction:  # a full disk may have rolled it back already
                super().execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and trouble(exc):
                return exc
            raise
        return None


class RunnerStore:
    """The runner's spa.db: a :class:`TurnStore` open while the runner works, closed while it
    idles.

    An open connection holds shared locks on spa.db and its ``-shm`` for as long as it lives,
    and the kernel walks all of a file's locks on every lock call (and at every exec of a
    task, which closes the inherited descriptors): a thousand idle runners holding theirs made
    each write of the others pay for a thousand (W8, bench/scale.py). The connection's page
    cache, schema and statements are also private memory of each runner. So the loop closes
    it once the runner has had nothing to do for :data:`IDLE_CLOSE` seconds; the next turn
    opens it again (about 0.4 ms in a forked runner, most of it loading the schema).
    """

    #: Seconds without a wake before the connection is closed: long enough that a run whose
    #: tasks end one after another keeps it, short enough that a started run soon lets go.
    IDLE_CLOSE = 0.2

    def __init__(self, path: str, cache_kib: int = 128) -> None:
        self.path = path
        self.cache_kib = cache_kib
        self._conn: TurnStore | None = None

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @property
    def conn(self) -> TurnStore:
        if self._conn is None:
            self._conn = connect_as(TurnStore, self.path, cache_kib=self.cache_kib, wal=False)
        return self._conn

    def close(self) -> None:
        """Close the connection and give its freed memory back to the system."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            freed.give_back()  # an idle runner has no later to keep freed memory for


def patiently(write: Callable[[], T]) -> T:
    """``write()`` (one statement, committed by itself) until the store takes it: a lock is
    waited out; a full disk raises :class:`StoreFull`."""
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
