"""A runner's turn holds spa.db's write lock for its writes alone: while the engine works inside
a turn, any other writer (the server, another runner) gets the lock at once; the engine reads
what its turn wrote; and spa.db is opened only when a statement needs it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

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
    with store.turn():
        store.execute("INSERT INTO t VALUES (1)")
        other.execute("BEGIN IMMEDIATE")  # raised "database is locked" when turns held it
        other.execute("INSERT INTO t VALUES (2)")
        other.execute("COMMIT")
        assert values(store) == [2]  # the turn's own write waits for the turn's end
    assert values(store) == [1, 2]
    other.close()
    store.close()


def test_a_read_inside_a_turn_sees_what_the_turn_wrote_before_it(store: RunnerStore) -> None:
    with store.turn():
        store.execute("INSERT INTO t VALUES (1)")
        assert [row[0] for row in store.execute("select v from t")] == [1]  # any case, any read
        counted = store.execute("WITH x AS (SELECT v FROM t) SELECT count(*) FROM x").fetchall()
        assert counted[0][0] == 1
        store.execute("INSERT INTO t VALUES (2)")
        assert values(store) == [1]  # the second write waits for the turn's end
    assert values(store) == [1, 2]
    store.close()


def test_a_turn_that_raises_writes_what_it_still_kept_no_more(store: RunnerStore) -> None:
    with pytest.raises(RuntimeError), store.turn():
        store.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("the engine failed mid-turn")
    with pytest.raises(RuntimeError), store.turn():
        store.execute("INSERT INTO t VALUES (2)")
        store.execute("SELECT count(*) FROM t").fetchone()  # made the write before it
        store.execute("INSERT INTO t VALUES (3)")
        raise RuntimeError("the engine failed mid-turn")
    with store.turn():
        store.execute("INSERT INTO t VALUES (4)")
    assert values(store) == [2, 4]
    store.close()


def test_a_turn_inside_a_turn_is_refused(store: RunnerStore) -> None:
    with store.turn(), pytest.raises(RuntimeError, match="reorder"), store.turn():
        pass
    store.close()


def test_a_turn_ending_while_another_holds_the_lock_writes_once_it_is_free(
    store: RunnerStore,
) -> None:
    other = other_writer(store)
    blocked = RunnerStore(store.path)
    blocked.execute("PRAGMA busy_timeout = 0")  # a refusal now, not a wait: the turn retries
    other.execute("BEGIN IMMEDIATE")
    attempts = 0
    original = blocked._try_once

    def try_once(kept: list[tuple[str, Any]]) -> sqlite3.OperationalError | None:
        nonlocal attempts
        attempts += 1
        if attempts == 2:
            other.execute("COMMIT")  # the other writer lets go after the first refusal
        return original(kept)

    blocked._try_once = try_once  # type: ignore[method-assign]
    with blocked.turn():
        blocked.execute("INSERT INTO t VALUES (3)")
    assert attempts == 2 and values(store) == [3]
    other.close()
    blocked.close()


def test_a_turn_without_a_statement_leaves_the_store_closed(store: RunnerStore) -> None:
    """A task's output or a timer that only signals: nothing to open spa.db for."""
    with store.turn():
        pass
    assert not store.is_open and store.close_in() is None
    with store.turn():
        store.execute("INSERT INTO t VALUES (1)")
        assert not store.is_open  # kept: opened at the turn's end, to write
    assert store.is_open and values(store) == [1]
    store.close()


def test_the_store_is_due_to_close_once_no_statement_needed_it_for_a_while(
    store: RunnerStore,
) -> None:
    store.execute("SELECT count(*) FROM t")
    left = store.close_in()
    assert left is not None and 0 < left <= RunnerStore.IDLE_CLOSE
    store._used -= RunnerStore.IDLE_CLOSE  # as if the last statement were that long ago
    assert store.close_in() == 0
    with store.turn():
        store.execute("INSERT INTO t VALUES (1)")
    renewed = store.close_in()
    assert renewed is not None and renewed > 0  # the turn's commit used it
    store.close()


def test_a_store_busy_while_it_opens_at_a_turns_end_is_waited_out(
    store: RunnerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine has acted (tasks started) before the turn's end opens spa.db: a store busy
    loading its schema then must not lose what the turn records."""
    opening = store.connection
    tries = 0

    def busy_once() -> sqlite3.Connection:
        nonlocal tries
        tries += 1
        if tries == 1:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = 5  # SQLITE_BUSY
            raise busy
        return opening()

    monkeypatch.setattr(store, "connection", busy_once)
    with store.turn():
        store.execute("INSERT INTO t VALUES (1)")
    assert tries == 2 and values(store) == [1]
    store.close()
