"""A runner's turn holds spa.db's write lock for its writes alone: while the engine works inside
a turn, any other writer (the server, another runner) gets the lock at once; and the engine
reads what its turn wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from spad.store.turns import RunnerStore


@pytest.fixture
def store(tmp_path: Path) -> RunnerStore:
    path = str(tmp_path / "spa.db")
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE t (v INTEGER)")
    return RunnerStore(path)


def other_writer(store: RunnerStore) -> sqlite3.Connection:
    """A second process's view: no busy wait, so a held lock fails at once."""
    return sqlite3.connect(store.path, timeout=0, isolation_level=None)


def values(store: RunnerStore) -> list[int]:
    with sqlite3.connect(store.path) as conn:
        return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY v")]


def test_another_writer_gets_the_lock_while_a_turn_is_under_way(store: RunnerStore) -> None:
    other = other_writer(store)
    conn = store.conn
    with conn.turn():
        conn.execute("INSERT INTO t VALUES (1)")
        other.execute("BEGIN IMMEDIATE")  # raised "database is locked" when turns held it
        other.execute("INSERT INTO t VALUES (2)")
        other.execute("COMMIT")
        assert values(store) == [2]  # the turn's own write waits for the turn's end
    assert values(store) == [1, 2]
    other.close()
    store.close()


def test_a_read_inside_a_turn_sees_what_the_turn_wrote_before_it(store: RunnerStore) -> None:
    conn = store.conn
    with conn.turn():
        conn.execute("INSERT INTO t VALUES (1)")
        assert [row[0] for row in conn.execute("select v from t")] == [1]  # any case, any read
        assert conn.execute("WITH x AS (SELECT v FROM t) SELECT count(*) FROM x").fetchone()[0] == 1
        conn.execute("INSERT INTO t VALUES (2)")
        assert values(store) == [1]  # the second write waits for the turn's end
    assert values(store) == [1, 2]
    store.close()


def test_a_turn_that_raises_writes_what_it_still_kept_no_more(store: RunnerStore) -> None:
    conn = store.conn
    with pytest.raises(RuntimeError), conn.turn():
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("the engine failed mid-turn")
    with pytest.raises(RuntimeError), conn.turn():
        conn.execute("INSERT INTO t VALUES (2)")
        conn.execute("SELECT count(*) FROM t").fetchone()  # made the write before it
        conn.execute("INSERT INTO t VALUES (3)")
        raise RuntimeError("the engine failed mid-turn")
    with conn.turn():
        conn.execute("INSERT INTO t VALUES (4)")
    assert values(store) == [2, 4]
    store.close()


def test_a_turn_inside_a_turn_is_refused(store: RunnerStore) -> None:
    conn = store.conn
    with conn.turn(), pytest.raises(RuntimeError, match="reorder"), conn.turn():
        pass
    store.close()


def test_a_turn_ending_while_another_holds_the_lock_writes_once_it_is_free(
    store: RunnerStore,
) -> None:
    other = other_writer(store)
    blocked = RunnerStore(store.path)
    conn = blocked.conn
    conn.execute("PRAGMA busy_timeout = 0")  # a refusal now, not a wait: the turn retries
    other.execute("BEGIN IMMEDIATE")
    attempts = 0
    original = conn._try_once

    def try_once(kept: list[tuple[str, object]]) -> sqlite3.OperationalError | None:
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            other.execute("COMMIT")  # the other writer lets go after the first refusal
        return original(kept)

    conn._try_once = try_once  # type: ignore[method-assign]
    with conn.turn():
        conn.execute("INSERT INTO t VALUES (3)")
    assert attempts == 2 and values(store) == [3]
    other.close()
    blocked.close()
