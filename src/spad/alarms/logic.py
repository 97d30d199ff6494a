"""What signals do to alarms: deduplicate, escalate, clear, reopen within the hold-off.

An alarm is identified by (project, source, kind). Its lifecycle is ``open → acknowledged →
cleared``; a signal of severity ``clear`` or a person clears it. A repeat raises ``count`` and
``last_seen`` of the alarm that is not cleared; an alarm cleared less than ``holdoff`` seconds
ago is reopened instead of a new one being made, so a flapping source does not flood.
Every batch of signals and the source's cursor are written in one transaction: a signal is
applied exactly once, even across crashes.
"""

from __future__ import annotations

import math
import sqlite3
import time
from typing import Any

from spad.alarms.levels import ACKNOWLEDGED, CLEAR, CLEARED, OPEN, RANK, SEVERITIES
from spad.errors import Conflict, NotFound
from spad.store import alarms as store
from spad.store.runs import iso, now
from spad.store.sqlite import transaction

Event = dict[str, Any]


#: A message is cut to this many bytes (UTF-8): sources are outside spad's control, and every
#: alarm's message goes to the journal, the hook and each listing.
MAX_MESSAGE = 8 * 1024
CUT_MARK = " [cut: {} bytes in all]"


def cut(message: str) -> str:
    """``message``, or its start within :data:`MAX_MESSAGE` bytes, marked as cut."""
    data = message.encode("utf-8", "backslashreplace")
    if len(data) <= MAX_MESSAGE:
        return data.decode()
    mark = CUT_MARK.format(len(data))
    room = MAX_MESSAGE - len(mark.encode())
    return data[:room].decode("utf-8", "ignore") + mark


class Signal:
    """One row of a source."""

    __slots__ = ("id", "kind", "message", "project", "severity", "source", "value")

    def __init__(self, row: dict[str, Any]) -> None:
        self.id = int(row["id"])
        self.source = str(row["source"])
        self.kind = str(row["kind"])
        self.severity = str(row["severity"]).lower()
        self.message = cut("" if row["message"] is None else str(row["message"]))
        value = None if row.get("value") is None else float(row["value"])
        self.value = value if value is None or math.isfinite(value) else None  # NaN is not JSON
        self.project = "" if row.get("project") is None else str(row["project"])


def apply(
    conn: sqlite3.Connection, origin: str, signals: list[Signal], holdoff: float
) -> list[Event]:
    """Apply the signals after the source's cursor; return the events to log."""
    events: list[Event] = []
    with transaction(conn):
        last = store.cursor(conn, origin)
        for signal in signals:
            if signal.id <= last:
                continue  # applied before (two readers, or a replay after a crash)
            events.extend(_apply_one(conn, origin, signal, holdoff))
            last = signal.id
        store.set_cursor(conn, origin, last)
    return events


def _apply_one(
    conn: sqlite3.Connection, origin: str, signal: Signal, holdoff: float
) -> list[Event]:
    at = now()
    if signal.severity not in SEVERITIES:
        return [
            {
                "event": "rejected",
                "at": at,
                "origin": origin,
                "signal": signal.id,
                "reason": f"severity {signal.severity!r} is not one of {', '.join(SEVERITIES)}",
            }
        ]
    key = (signal.project, signal.source, signal.kind)
    active = store.active(conn, *key)
    if signal.severity == CLEAR:
        if active is None:
            return []
        return [
            _transition(
                conn,
                active["id"],
                CLEARED,
                at,
                "by a clear signal",
                state=CLEARED,
                cleared_at=at,
                last_seen=at,
            )
        ]
    if active is not None:
        return _repeat(conn, active, signal, at, holdoff)
    recent = store.recently_cleared(conn, *key, since=iso(time.time() - holdoff))
    if recent is not None:
        return [
            _transition(
                conn,
                recent["id"],
                "reopened",
                at,
                "fired again within the hold-off",
                state=OPEN,
                severity=signal.severity,
                count=recent["count"] + 1,
                last_seen=at,
                message=signal.message,
                value=signal.value,
                cleared_at=None,
                acknowledged_at=None,
                logged_at=at,
            )
        ]
    alarm_id = store.insert(
        conn,
        signal.project,
        signal.source,
        signal.kind,
        signal.severity,
        signal.message,
        signal.value,
        origin,
        at,
    )
    store.history(conn, alarm_id, at, "opened", f"from {origin}")
    return [_event(conn, alarm_id, "opened", at)]


def _repeat(
    conn: sqlite3.Connection, active: sqlite3.Row, signal: Signal, at: str, holdoff: float
) -> list[Event]:
    fields: dict[str, Any] = {
        "count": active["count"] + 1,
        "last_seen": at,
        "message": signal.message,
        "value": signal.value,
    }
    if RANK[signal.severity] > RANK[active["severity"]]:
        return [
            _transition(
                conn,
                active["id"],
                "escalated",
                at,
                f"{active['severity']} -> {signal.severity}",
                severity=signal.severity,
                logged_at=at,
                **fields,
            )
        ]
    due = active["logged_at"] <= iso(time.time() - holdoff)
    if due:
        fields["logged_at"] = at
    store.update(conn, active["id"], **fields)
    return [_event(conn, active["id"], "repeated", at)] if due else []


def _transition(
    conn: sqlite3.Connection, alarm_id: int, event: str, at: str, detail: str, **fields: Any
) -> Event:
    store.update(conn, alarm_id, **fields)
    store.history(conn, alarm_id, at, event, detail)
    return _event(conn, alarm_id, event, at)


def _event(conn: sqlite3.Connection, alarm_id: int, event: str, at: str) -> Event:
    return {"event": event, "at": at, **public(store.get(conn, alarm_id))}


def public(row: sqlite3.Row | None) -> dict[str, Any]:
    """An alarm as the API shows it."""
    if row is None:
        return {}
    return {
        "id": row["id"],
        "project": row["project"] or None,
        "source": row["source"],
        "kind": row["kind"],
        "severity": row["severity"],
        "state": row["state"],
        "count": row["count"],
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
        "message": row["message"],
        "value": row["value"],
    }


def acknowledge(conn: sqlite3.Connection, alarm_id: int, by: str) -> Event:
    return _by_person(conn, alarm_id, by, ACKNOWLEDGED, (OPEN,))


def clear(conn: sqlite3.Connection, alarm_id: int, by: str) -> Event:
    return _by_person(conn, alarm_id, by, CLEARED, (OPEN, ACKNOWLEDGED))


def _by_person(
    conn: sqlite3.Connection, alarm_id: int, by: str, state: str, allowed: tuple[str, ...]
) -> Event:
    at = now()
    with transaction(conn):
        row = store.get(conn, alarm_id)
        if row is None:
            raise NotFound(f"alarm {alarm_id} does not exist (spa_ctl alarms lists them)")
        if row["state"] not in allowed:
            raise Conflict(f"alarm {alarm_id} is {row['state']}: it cannot be {state}")
        stamp = {"acknowledged_at": at} if state == ACKNOWLEDGED else {"cleared_at": at}
        return _transition(conn, alarm_id, state, at, f"by {by}", state=state, **stamp)
