"""The audit trail: who changed what, when, and how it ended."""

from __future__ import annotations

import sqlite3

from spad.store.runs import now
from spad.store.sqlite import transaction

MAX_DETAIL = 500


def record(
    conn: sqlite3.Connection, method: str, client: str, outcome: str, detail: str = ""
) -> int:
    """Add a row to the trail; returns its id. Written in a transaction of its own unless one
    is under way: ``transaction`` waits for the write lock in short pauses, where a lone
    statement would wait in SQLite's busy handler (1, 2, 5 ... ms a sleep)."""
    row = _row(now(), method, client, outcome, detail)
    if conn.in_transaction:
        return int(conn.execute(_INSERT, row).lastrowid or 0)
    with transaction(conn):
        return int(conn.execute(_INSERT, row).lastrowid or 0)


def record_all(
    conn: sqlite3.Connection, client: str, entries: list[tuple[str, str, str, str]]
) -> None:
    """Add the rows of one request (``at``, method, outcome, detail each) in one transaction:
    a JSON-RPC batch of a hundred calls takes the write lock once for its trail, not a hundred
    times."""
    with transaction(conn):
        conn.executemany(_INSERT, [_row(at, m, client, o, d) for at, m, o, d in entries])


_INSERT = "INSERT INTO audit (at, method, client, outcome, detail) VALUES (?, ?, ?, ?, ?)"


def _row(at: str, method: str, client: str, outcome: str, detail: str) -> tuple[str, ...]:
    return at, _storable(method), client, _storable(outcome), _storable(detail)


def _storable(text: str) -> str:
    """Cut to size, with anything that is not Unicode (a lone surrogate a client sent) shown
    as its escape: SQLite would refuse the row, and a refused call must still be recorded."""
    return text[:MAX_DETAIL].encode("utf-8", "backslashreplace").decode()


def latest(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    rows = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return rows[::-1]


def update_outcome(conn: sqlite3.Connection, row_id: int, outcome: str) -> None:
    conn.execute("UPDATE audit SET outcome = ? WHERE id = ?", (_storable(outcome), row_id))
