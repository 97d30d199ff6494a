"""``GET /events``: the event journal as Server-Sent Events.

A client gets every event after its ``Last-Event-ID`` (read from the store), then each new one
as the feed finds it; a comment every ``HEARTBEAT`` seconds keeps proxies and the client sure
the stream lives. A client that stops reading is dropped (see :data:`feed.MAX_BACKLOG`, and the
HTTP layer's send timeout); one that closed its connection is let go at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from spad.numerals import ascii_int
from spad.server.feed import EventFeed, Subscriber, encode
from spad.server.http import Request

#: Seconds between comment lines: under the 15 s promised, whatever the loop's delays.
HEARTBEAT = 14.0
HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}


def last_event_id(request: Request) -> int | None:
    """The client's ``Last-Event-ID``; anything but ASCII digits (of an id SQLite can hold) is
    as if absent."""
    value = request.headers.get("last-event-id", "").strip()
    return ascii_int(value) if len(value) < 19 else None


async def serve(request: Request, feed: EventFeed, signed_in: Callable[[], bool]) -> None:
    """Stream events until the client goes, stops reading, or ``signed_in`` says its token is
    no longer one (rotated): looked at before anything is sent after a wake."""
    if request.head:  # the stream's head alone: nothing to follow
        await request.start_stream(200, HEADERS)
        await request.end_stream()
        return
    subscriber = feed.subscribe()
    gone = asyncio.get_running_loop().create_task(request.until_gone())
    gone.add_done_callback(lambda _: subscriber.ready.set())  # wakes _follow to end
    try:
        await request.start_stream(200, HEADERS)
        await _send(request, b": spad event stream\n\n")
        sent = await _resume(request, feed, subscriber.start_id)
        await _follow(request, subscriber, sent, lambda: gone.done() or not signed_in())
    finally:
        gone.cancel()
        feed.unsubscribe(subscriber)


async def _resume(request: Request, feed: EventFeed, newest: int) -> int:
    """Replay what the client missed up to ``newest`` (where its live queue starts); returns
    the last id it has. An id beyond ``newest`` that spa.db holds was read by the client (from
    ``events``) before the feed, which reads every 25 ms, took it: its live queue skips up to
    it. One beyond what spa.db holds (spa.db restored from a backup, ids given again) is taken
    as "from now": waiting for it would silence the stream."""
    resume = last_event_id(request)
    if resume is None:
        return newest
    if resume > newest:
        stored = feed.newest_id()
        if resume <= stored:
            return resume
        await _send(request, f": event {resume} is beyond the newest ({stored})\n\n".encode())
        return newest
    return await _replay(request, feed, resume, newest)


async def _replay(request: Request, feed: EventFeed, after: int, up_to: int) -> int:
    """The stored events in ``(after, up_to]``: from the client's last to where its live
    queue starts."""
    oldest = feed.oldest_id()
    if oldest and after + 1 < oldest:
        await _send(request, f": events {after + 1} to {oldest - 1} are gone\n\n".encode())
    while rows := feed.backlog(after, up_to):
        await _send(request, b"".join(encode(row) for row in rows))
        after = int(rows[-1]["id"])
    return after


async def _follow(
    request: Request, subscriber: Subscriber, sent: int, over: Callable[[], bool]
) -> None:
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + HEARTBEAT
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscriber.ready.wait(), max(0.0, next_beat - loop.time()))
        if subscriber.dropped or over():
            return
        items = subscriber.take()
        chunks = [data for event_id, data in items if event_id > sent]
        if items:
            sent = max(sent, items[-1][0])
        if loop.time() >= next_beat:
            chunks.append(b": keep-alive\n\n")
            next_beat = loop.time() + HEARTBEAT
        if chunks:
            await _send(request, b"".join(chunks))


async def _send(request: Request, data: bytes) -> None:
    await request.write(data)  # a client that takes nothing is cut by the send timeout
