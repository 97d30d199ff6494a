"""The event journal (``events``), written by the store's triggers (see migrations 6 and 12),
cut to its size by the transition owner. Standard library only: runners cut it too."""

from __future__ import annotations

import sqlite3

from spad.store.sqlite import EVENTS_KEPT

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from spad.store.sqlite import Statements

#: One read of the journal returns at most this many events.
PAGE = 500


def after(conn: sqlite3.Connection, last_id: int, limit: int = PAGE) -> list[sqlite3.Row]:
    """The events after ``last_id``, oldest first: rows of ``id``, ``kind``, ``data`` (JSON)."""
    return select(conn, after=last_id, limit=limit)


def newest_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(id) FROM events").fetchone()
    return int(row[0] or 0)


def oldest_id(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT min(id) FROM events").fetchone()
    return int(row[0] or 0)


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits to the file: a cheap "anything new?"."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def select(
    conn: sqlite3.Connection,
    after: int = 0,
    limit: int = PAGE,
    newest_first: bool = False,
    **where: object,
) -> list[sqlite3.Row]:
    """Stored events after ``after`` whose data has the given fields (``project="pr1"``,
    ``run_id=3``, ``kind`` is the event's kind); None values are not filters."""
    clauses, args = ["id > ?"], [after]
    for field, value in where.items():
        if value is None:
            continue
        clauses.append("kind = ?" if field == "kind" else f"json_extract(data, '$.{field}') = ?")
        args.append(value)  # type: ignore[arg-type]
    order = "DESC" if newest_first else "ASC"
    return conn.execute(
        f"SELECT id, kind, data FROM events WHERE {' AND '.join(clauses)}"
        f" ORDER BY id {order} LIMIT ?",
        (*args, limit),
    ).fetchall()


def keep_newest(conn: Statements) -> None:
    """Drop the events older than the newest ``EVENTS_KEPT``: once a transition (a range on
    the rowid), compiled once a connection where each trigger compiled it into every
    statement that writes a status."""
    conn.execute("DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (EVENTS_KEPT,))
