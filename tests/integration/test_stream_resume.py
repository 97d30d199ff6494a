"""A stream resumed after an event the feed has not read yet (it reads spa.db every 25 ms, and
``spa_ctl events`` reads the stored ones through ``events`` first) sends it no second time."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from spad.server import stream
from spad.server.feed import EventFeed
from spad.store.sqlite import connect, migrate


class _Request:
    """The two things ``stream._resume`` uses of a request: its headers and its writes."""

    def __init__(self, last_event_id: int) -> None:
        self.headers = {"last-event-id": str(last_event_id)}
        self.sent: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.sent.append(data)


def _store(tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    db = tmp_path / "spa.db"
    conn = connect(db)
    migrate(conn)
    conn.execute("INSERT INTO events (kind, data) VALUES ('task', '{}')")
    return db, conn


def _resume(feed: EventFeed, last_event_id: int) -> tuple[int, list[bytes]]:
    subscriber = feed.subscribe()
    request = _Request(last_event_id)
    sent = asyncio.run(stream._resume(request, feed, subscriber.start_id))  # type: ignore[arg-type]
    return sent, request.sent


def test_an_event_the_feed_has_not_read_yet_is_not_sent_again(tmp_path: Path) -> None:
    db, conn = _store(tmp_path)
    feed = EventFeed(db)
    feed.listen(lambda rows: None)  # someone listens: the feed reads on its own clock
    for _ in range(2):  # written after the feed's last read
        conn.execute("INSERT INTO events (kind, data) VALUES ('task', '{}')")
    assert feed.last_id == 1
    sent, said = _resume(feed, 3)  # the client read events 2 and 3 from `events`
    assert sent == 3  # the live queue's 2 and 3 are skipped
    assert said == []


def test_an_event_id_beyond_the_store_is_taken_as_from_now(tmp_path: Path) -> None:
    db, _ = _store(tmp_path)
    feed = EventFeed(db)
    sent, said = _resume(feed, 40)  # spa.db restored from an older backup
    assert sent == 1
    assert said == [b": event 40 is beyond the newest (1)\n\n"]
