"""Queries on alarms, their history, signals and the sources' cursors."""

from __future__ import annotations

import sqlite3
from typing import Any

from spad.alarms.levels import CLEARED, OPEN

Row = sqlite3.Row


def cursor(conn: sqlite3.Connection, origin: str) -> int:
    row = conn.execute("SELECT last_id FROM alarm_cursors WHERE origin = ?", (origin,)).fetchone()
    return int(row[0]) if row else 0


def set_cursor(conn: sqlite3.Connection, origin: str, last_id: int) -> None:
    conn.execute(
        "INSERT INTO alarm_cursors (origin, last_id) VALUES (?, ?)"
        " ON CONFLICT (origin) DO UPDATE SET last_id = excluded.last_id",
        (origin, last_id),
    )


def active(conn: sqlite3.Connection, project: str, source: str, kind: str) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM alarms WHERE project = ? AND source = ? AND kind = ? AND state != ?"
        " ORDER BY id DESC LIMIT 1",
        (project, source, kind, CLEARED),
    ).fetchone()
    return row


def recently_cleared(
    conn: sqlite3.Connection, project: str, source: str, kind: str, since: str
) -> Row | None:
    row: Row | None = conn.execute(
        "SELECT * FROM alarms WHERE project = ? AND source = ? AND kind = ? AND state = ?"
        " AND cleared_at > ? ORDER BY id DESC LIMIT 1",
        (project, source, kind, CLEARED, since),
    ).fetchone()
    return row


def insert(
    conn: sqlite3.Connection,
    project: str,
    source: str,
    kind: str,
    severity: str,
    message: str,
    value: float | None,
    origin: str,
    at: str,
) -> int:
    cursor_ = conn.execute(
        "INSERT INTO alarms (project, source, kind, severity, state, count, first_seen,"
        " last_seen, message, value, origin, logged_at)"
        " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
        (project, source, kind, severity, OPEN, at, at, message, value, origin, at),
    )
    return int(cursor_.lastrowid or 0)


def update(conn: sqlite3.Connection, alarm_id: int, **fields: Any) -> None:
    columns = ", ".join(f"{name} = ?" for name in fields)
    conn.execute(f"UPDATE alarms SET {columns} WHERE id = ?", (*fields.values(), alarm_id))


def get(conn: sqlite3.Connection, alarm_id: int) -> Row | None:
    row: Row | None = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
    return row


def history(conn: sqlite3.Connection, alarm_id: int, at: str, event: str, detail: str) -> None:
    conn.execute(
        "INSERT INTO alarm_history (alarm_id, at, event, detail) VALUES (?, ?, ?, ?)",
        (alarm_id, at, event, detail),
    )


def history_of(conn: sqlite3.Connection, alarm_id: int) -> list[Row]:
    return conn.execute(
        "SELECT at, event, detail FROM alarm_history WHERE alarm_id = ? ORDER BY id", (alarm_id,)
    ).fetchall()


def listing(
    conn: sqlite3.Connection,
    states: list[str] | None = None,
    severities: list[str] | None = None,
    project: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 1000,
) -> list[Row]:
    where, args = ["1 = 1"], []
    for column, values in (("state", states), ("severity", severities)):
        if values:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            args.extend(values)
    if project is not None:
        where.append("project = ?")
        args.append(project)
    if since is not None:
        where.append("last_seen >= ?")
        args.append(since)
    if until is not None:
        where.append("first_seen <= ?")
        args.append(until)
    return conn.execute(
        f"SELECT * FROM alarms WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()


def raise_signal(
    conn: sqlite3.Connection,
    at: str,
    project: str | None,
    source: str,
    kind: str,
    severity: str,
    message: str,
    value: float | None,
) -> int:
    cursor_ = conn.execute(
        "INSERT INTO signals (at, project, source, kind, severity, message, value)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (at, project, source, kind, severity, message, value),
    )
    return int(cursor_.lastrowid or 0)


def pending_signals(conn: sqlite3.Connection) -> bool:
    """Signals raised through spad that no watcher has applied yet."""
    row = conn.execute("SELECT max(id) FROM signals").fetchone()
    return bool(row[0]) and int(row[0]) > cursor(conn, "spad")
