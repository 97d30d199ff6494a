"""The live feed: finds new rows of the event journal and hands them to whoever listens.

Runners and the alarm watcher are other processes, so their writes cannot call the server. The
feed asks SQLite instead: ``PRAGMA data_version`` on a connection of its own changes when
another connection committed, and costs a few microseconds. It is asked every ``POLL``
seconds, and only while someone listens (a stream client, or a hook); an idle server does not
wake up for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Callable
from pathlib import Path

from spad.store import events
from spad.store.sqlite import connect_as

log = logging.getLogger("spad.events")

#: Seconds between looks at the journal while someone listens (well within the 1 s promised).
POLL = 0.025
#: A stream client that has this many bytes of events not yet taken is dropped (it stopped
#: reading); its memory stays bounded, and it resumes with Last-Event-ID when it comes back.
MAX_BACKLOG = 4 * 1024 * 1024


def encode(row: sqlite3.Row) -> bytes:
    """One event in Server-Sent Events' framing (the JSON from SQLite holds no newline)."""
    return f"id: {row['id']}\nevent: {row['kind']}\ndata: {row['data']}\n\n".encode()


class Subscriber:
    """One stream client's queue of encoded events."""

    def __init__(self, start_id: int) -> None:
        #: Events up to this id were read before the client came: it reads them from the store.
        self.start_id = start_id
        self.queue: deque[tuple[int, bytes]] = deque()
        self.backlog = 0
        self.dropped = False
        self.ready = asyncio.Event()

    def push(self, event_id: int, data: bytes) -> None:
        if self.dropped:
            return
        self.backlog += len(data)
        if self.backlog > MAX_BACKLOG:
            self.dropped = True
            self.queue.clear()
        else:
            self.queue.append((event_id, data))
        self.ready.set()

    def take(self) -> list[tuple[int, bytes]]:
        items = list(self.queue)
        self.queue.clear()
        self.backlog = 0
        self.ready.clear()
        return items


Listener = Callable[[list[sqlite3.Row]], None]


class EventFeed:
    def __init__(self, db: Path) -> None:
        # It only reads new events: a small page cache, and the journal mode the server set.
        self.conn = connect_as(sqlite3.Connection, db, cache_kib=128, wal=False)
        self.last_id = events.newest_id(self.conn)
        self.subscribers: set[Subscriber] = set()
        self.listeners: list[Listener] = []
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._update_wanted()

    def subscribe(self) -> Subscriber:
        if not self._wanted.is_set():  # nobody listened: what was missed is no one's
            self.last_id = events.newest_id(self.conn)
        subscriber = Subscriber(self.last_id)
        self.subscribers.add(subscriber)
        self._update_wanted()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        self._update_wanted()

    def listen(self, listener: Listener) -> None:
        """Called with every batch of new events, for the server's life (hooks)."""
        self.listeners.append(listener)
        self._update_wanted()

    def backlog(self, after_id: int, up_to: int) -> list[sqlite3.Row]:
        """Stored events in ``(after_id, up_to]``, one page (call again after the last id)."""
        return [row for row in events.after(self.conn, after_id) if row["id"] <= up_to]

    def oldest_id(self) -> int:
        return events.oldest_id(self.conn)

    def newest_id(self) -> int:
        """The newest stored event's id, which the feed may not have read yet."""
        return events.newest_id(self.conn)

    def _update_wanted(self) -> None:
        if self.subscribers or self.listeners:
            self._wanted.set()
        else:
            self._wanted.clear()

    async def _run(self) -> None:
        version = events.data_version(self.conn)
        while True:
            if not self._wanted.is_set():
                await self._wanted.wait()
                version = -1  # look at once: something may have happened while nobody listened
            await asyncio.sleep(POLL)
            try:
                now = events.data_version(self.conn)
                if now != version:
                    version = now
                    self._deliver()
            except sqlite3.Error as exc:  # busy for longer than busy_timeout: try again later
                log.warning("reading the event journal failed: %s", exc)

    def _deliver(self) -> None:
        while rows := events.after(self.conn, self.last_id):
            self.last_id = int(rows[-1]["id"])
            for row in rows:
                data = encode(row)
                for subscriber in self.subscribers:
                    subscriber.push(int(row["id"]), data)
            for listener in self.listeners:
                try:
                    listener(rows)
                except Exception:
                    log.exception("an event listener failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.conn.close()
