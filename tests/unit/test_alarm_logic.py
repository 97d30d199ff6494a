"""Alarm logic on a real SQLite file: dedup, escalation, clearing, hold-off, exactly once."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from spad.alarms import logic
from spad.alarms.logic import Signal
from spad.errors import Conflict, NotFound
from spad.store import alarms as store


class Source:
    def __init__(self) -> None:
        self.next_id = 0

    def __call__(self, severity: str, kind: str = "drift", **fields: Any) -> Signal:
        self.next_id += 1
        return Signal(
            {
                "id": self.next_id,
                "source": "ana",
                "kind": kind,
                "severity": severity,
                "message": fields.get("message", severity),
                "value": fields.get("value"),
                "project": fields.get("project"),
            }
        )


def alarms(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [logic.public(row) for row in store.listing(conn)][::-1]


def test_repeats_are_deduplicated_by_project_source_and_kind(conn: sqlite3.Connection) -> None:
    signal = Source()
    events = logic.apply(
        conn,
        "x",
        [
            signal("warning"),
            signal("warning"),
            signal("warning"),
            signal("warning", kind="other"),
            signal("warning", project="p2"),
        ],
        holdoff=60,
    )
    assert [(a["kind"], a["project"], a["count"]) for a in alarms(conn)] == [
        ("drift", None, 3),
        ("other", None, 1),
        ("drift", "p2", 1),
    ]
    assert [e["event"] for e in events] == ["opened", "opened", "opened"]  # repeats held off


def test_a_higher_severity_escalates_and_clear_closes(conn: sqlite3.Connection) -> None:
    signal = Source()
    events = logic.apply(
        conn,
        "x",
        [signal("info"), signal("critical"), signal("warning"), signal("clear")],
        holdoff=60,
    )
    assert [e["event"] for e in events] == ["opened", "escalated", "cleared"]
    (alarm,) = alarms(conn)
    assert (alarm["severity"], alarm["state"], alarm["count"]) == ("critical", "cleared", 3)
    history = [row["event"] for row in store.history_of(conn, alarm["id"])]
    assert history == ["opened", "escalated", "cleared"]


def test_a_clear_without_an_alarm_does_nothing(conn: sqlite3.Connection) -> None:
    assert logic.apply(conn, "x", [Source()("clear")], holdoff=60) == []
    assert alarms(conn) == []


def test_within_the_holdoff_a_cleared_alarm_reopens(conn: sqlite3.Connection) -> None:
    signal = Source()
    events = logic.apply(
        conn,
        "x",
        [signal("warning"), signal("clear"), signal("warning"), signal("clear"), signal("warning")],
        holdoff=60,
    )
    assert [e["event"] for e in events] == ["opened", "cleared", "reopened", "cleared", "reopened"]
    (alarm,) = alarms(conn)
    assert (alarm["state"], alarm["count"]) == ("open", 3)


def test_past_the_holdoff_a_new_alarm_is_made(conn: sqlite3.Connection) -> None:
    signal = Source()
    logic.apply(conn, "x", [signal("warning"), signal("clear"), signal("warning")], holdoff=0)
    assert [(a["state"], a["count"]) for a in alarms(conn)] == [("cleared", 1), ("open", 1)]


def test_a_bad_severity_is_rejected_and_skipped(conn: sqlite3.Connection) -> None:
    signal = Source()
    events = logic.apply(conn, "x", [signal("panic"), signal("warning")], holdoff=60)
    assert [e["event"] for e in events] == ["rejected", "opened"]
    assert "panic" in events[0]["reason"]
    assert store.cursor(conn, "x") == 2


def test_each_signal_is_applied_once(conn: sqlite3.Connection) -> None:
    signal = Source()
    batch = [signal("warning"), signal("warning")]
    logic.apply(conn, "x", batch, holdoff=60)
    assert logic.apply(conn, "x", batch, holdoff=60) == []
    logic.apply(conn, "y", batch, holdoff=60)  # another source has its own cursor
    assert [a["count"] for a in alarms(conn)] == [4]
    assert store.cursor(conn, "x") == 2


def test_people_acknowledge_and_clear(conn: sqlite3.Connection) -> None:
    logic.apply(conn, "x", [Source()("critical")], holdoff=60)
    assert logic.acknowledge(conn, 1, "a person")["state"] == "acknowledged"
    with pytest.raises(Conflict, match="acknowledged"):
        logic.acknowledge(conn, 1, "a person")
    assert logic.clear(conn, 1, "a person")["state"] == "cleared"
    with pytest.raises(Conflict, match="cleared"):
        logic.clear(conn, 1, "a person")
    with pytest.raises(NotFound):
        logic.acknowledge(conn, 99, "a person")


def test_a_long_message_is_cut_at_8_kib_and_marked() -> None:
    from spad.alarms.logic import MAX_MESSAGE, cut

    assert cut("short") == "short"
    long = "é" * 10_000  # two bytes each: the cut must not split one
    message = cut(long)
    assert len(message.encode()) <= MAX_MESSAGE
    assert message.endswith("[cut: 20000 bytes in all]") and "\ufffd" not in message
