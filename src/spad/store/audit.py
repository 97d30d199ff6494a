"""The audit trail: who changed what, when, and how it ended."""

from __future__ import annotations

import sqlite3

from spad.store.runs import now

MAX_DETAIL = 500


def record(
    conn: sqlite3.Connection, method: str, client: str, outcome: str, detail: str = ""
) -> None:
    conn.execute(
        "INSERT INTO audit (at, method, client, outcome, detail) VALUES (?, ?, ?, ?, ?)",
        (now(), method, client, outcome[:MAX_DETAIL], detail[:MAX_DETAIL]),
    )


def latest(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    rows = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return rows[::-1]
