"""A writer waits for spa.db's write lock in pauses of 0.1 to 2 ms (SQLite's own handler sleeps
1, 2, 5 ... 100 ms), up to its connection's busy timeout, which it leaves as it found it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from spad.store import audit
from spad.store import sqlite as store


@pytest.fixture
def path(tmp_path: Path) -> str:
    db = str(tmp_path / "spa.db")
    with sqlite3.connect(db) as setup:
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE t (v INTEGER)")
    return db


def busy_timeout(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA busy_timeout").fetchone()[0])


def test_the_lock_is_taken_soon_after_the_holder_lets_go(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = sqlite3.connect(path, isolation_level=None)
    writer = sqlite3.connect(path, isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 6:
            holder.execute("COMMIT")  # the holder lets go during the sixth pause

    monkeypatch.setattr("spad.store.sqlite.time.sleep", pause)
    store.begin_immediate(writer)
    assert writer.in_transaction and len(pauses) == 6
    assert all(p <= store.LONGEST_PAUSE * 1.5 for p in pauses), pauses
    assert pauses[0] < pauses[-1]  # doubling from 0.1 ms
    writer.execute("ROLLBACK")
    assert busy_timeout(writer) == 10_000  # left as it was
    holder.close()
    writer.close()


def test_a_lock_held_past_the_busy_timeout_is_refused(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = sqlite3.connect(path, isolation_level=None)
    writer = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as refused:
        store.begin_immediate(writer)
    assert store.trouble(refused.value) == store.BUSY
    assert not writer.in_transaction and busy_timeout(writer) == 50
    holder.execute("COMMIT")
    with store.transaction(writer):  # free again: taken at once
        writer.execute("INSERT INTO t VALUES (1)")
    assert holder.execute("SELECT v FROM t").fetchall() == [(1,)]
    holder.close()
    writer.close()


def test_an_audit_row_waits_for_the_lock_in_the_same_pauses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written after every call that changes something: a lone INSERT waited in SQLite's
    handler, sleeping 1 ms and more while runners took the lock in turn."""
    db = tmp_path / "spa.db"
    server = store.connect(db, busy_timeout_ms=store.SERVER_BUSY_TIMEOUT_MS)
    store.migrate(server)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            holder.execute("COMMIT")

    monkeypatch.setattr("spad.store.sqlite.time.sleep", pause)
    audit.record(server, "stop", "local", "ok")
    assert len(pauses) == 3 and not server.in_transaction
    assert [row["method"] for row in audit.latest(server, 5)] == ["stop"]
    holder.close()
    server.close()


def test_a_lock_held_for_long_is_tried_ever_less_often(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup or a shell left in a transaction: a thousand runners polling every 2 ms for
    seconds would take the machine. Past 50 ms the pauses double on, up to 100 ms."""
    holder = sqlite3.connect(path, isolation_level=None)
    writer = sqlite3.connect(path, isolation_level=None, timeout=2)
    holder.execute("BEGIN IMMEDIATE")
    now = [0.0]
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr("spad.store.sqlite.time.sleep", pause)
    monkeypatch.setattr("spad.store.sqlite.time.monotonic", lambda: now[0])
    with pytest.raises(sqlite3.OperationalError):
        store.begin_immediate(writer)
    monkeypatch.undo()
    assert now[0] >= 2.0  # the whole busy timeout was waited
    assert max(pauses) > store.LONGEST_PAUSE * 10 and max(pauses) <= store.LONG_PAUSE * 1.5
    assert len(pauses) < 80, len(pauses)  # SQLite's own handler: about 30 in 2 s
    holder.close()
    writer.close()


def test_a_transaction_the_store_rolled_back_itself_ends_with_its_own_error(path: str) -> None:
    """On a full disk SQLite rolls the transaction back itself: rolling back again raised
    "no transaction is active", which hid the full disk from the caller (a runner claiming its
    run then died with a traceback instead of exit 75)."""
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(ValueError, match="the write's own error"), store.transaction(conn):
        conn.execute("ROLLBACK")  # what SQLite did
        raise ValueError("the write's own error")
    assert not conn.in_transaction
    conn.close()


def test_a_requests_audit_rows_are_written_in_one_transaction(tmp_path: Path) -> None:
    """A JSON-RPC batch of a hundred stops took the write lock a hundred times more for its
    trail; its rows now take it once."""
    conn = store.connect(tmp_path / "spa.db")
    store.migrate(conn)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    entries = [
        (f"2026-11-29T00:00:0{i}Z", "stop", "ok", f'{{"workflow": "w{i}"}}') for i in range(3)
    ]
    audit.record_all(conn, "127.0.0.1", entries)
    conn.set_trace_callback(None)
    assert sum(s.startswith("BEGIN") for s in statements) == 1
    rows = audit.latest(conn, 5)
    assert [(r["method"], r["client"], r["detail"]) for r in rows] == [
        ("stop", "127.0.0.1", f'{{"workflow": "w{i}"}}') for i in range(3)
    ]
    conn.close()
