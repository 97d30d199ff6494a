"""The read cache over a real SQLite file: an answer is given again only while nothing in the
store changed, whoever changed it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from spad.server.readcache import ReadCache
from spad.store.sqlite import connect


def _signin(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO audit (at, method, client, outcome) VALUES ('now', 'x', 'local', 'ok')"
    )


def test_an_answer_is_kept_while_the_store_is_unchanged(conn: sqlite3.Connection) -> None:
    reads = ReadCache(conn)
    assert reads.get("a") is None
    reads.put("a", "answer")
    assert reads.get("a") == "answer"
    conn.execute("SELECT count(*) FROM runs").fetchone()  # a read changes nothing
    assert reads.get("a") == "answer"
    assert reads.get("b") is None


def test_another_connections_commit_lets_it_go(conn: sqlite3.Connection, tmp_path: Path) -> None:
    reads = ReadCache(conn)
    reads.get("a")
    reads.put("a", "answer")
    other = connect(tmp_path / "spa.db")  # a runner, the event feed: another connection
    try:
        _signin(other)
    finally:
        other.close()
    assert reads.get("a") is None


def test_its_own_connections_write_lets_it_go(conn: sqlite3.Connection) -> None:
    reads = ReadCache(conn)
    reads.get("a")
    reads.put("a", "answer")
    _signin(conn)
    assert reads.get("a") is None


def test_an_answer_built_across_a_change_is_not_kept(conn: sqlite3.Connection) -> None:
    reads = ReadCache(conn)
    assert reads.get("a") is None
    _signin(conn)  # between the miss and the put: the answer may mix both states
    reads.put("a", "answer")
    assert reads.get("a") is None
    assert reads.get("a") is None  # and nothing stale came back on the second look


def test_the_kept_answers_stay_within_their_size(conn: sqlite3.Connection) -> None:
    reads = ReadCache(conn, max_chars=10)
    reads.get("a")
    reads.put("a", "12345")
    reads.put("b", "12345")
    reads.put("c", "123")  # the oldest makes room
    assert (reads.get("a"), reads.get("b"), reads.get("c")) == (None, "12345", "123")
    reads.put("big", "x" * 11)  # larger than all of it: not kept, nothing let go for it
    assert (reads.get("big"), reads.get("b")) == (None, "12345")
