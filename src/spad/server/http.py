"""A small HTTP/1.1 server: asyncio streams, with h11 doing the protocol.

Why not a framework: aiohttp alone costs the server 26 MiB of memory, more than a whole
supervisord; spad needs four routes. h11 parses and frames (keep-alive, chunked bodies, bad
requests); this module reads and writes sockets, enforces time limits, and hands each request
to one handler. Bodies are streamed: a handler reads ``Request.chunks()``, never the whole
body unless it asks (``Request.read(limit)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11

from spad.errors import InvalidRequest, error_reply
from spad.numerals import ascii_int
from spad.server.listener import Listener
from spad.server.shedlog import ShedLog

if TYPE_CHECKING:
    import ssl  # a server without TLS runs without the module (see spad.server.main)

log = logging.getLogger("spad.http")

READ_SIZE = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024
#: A reply up to this size goes out in one write (head, body and end together: one system
#: call and one segment, not three); a larger one part by part.
ONE_WRITE = 256 * 1024


@dataclass(frozen=True)
class Limits:
    """What a client may take of the server."""

    #: A client must send its whole request line and headers within this, counted from the
    #: connection (or, on a kept-alive one, from the request's first byte): a byte now and
    #: then does not keep a connection.
    head_timeout: float = 30.0
    #: Each piece of a body within this.
    body_timeout: float = 60.0
    #: A client must take what is written to it within this (its buffers full, each time):
    #: one that never reads its reply would otherwise hold its connection for ever.
    send_timeout: float = 60.0
    #: An idle kept-alive connection is closed after this.
    keep_alive: float = 75.0
    #: Connections at once; at the cap the one the server has waited on longest makes room
    #: (waited on to send, or to take its reply).
    max_connections: int = 256


class BodyTooLarge(Exception):
    """The body is over the limit the handler gave."""


class Request:
    """One request. A HEAD is served as its GET, the body left out (RFC 9110 9.3.2, as nginx
    does): the handler sees ``method`` GET and ``head`` True, and what it writes is dropped."""

    def __init__(self, connection: _Connection, event: h11.Request, scheme: str) -> None:
        self._connection = connection
        self.head = event.method == b"HEAD"
        self.method = "GET" if self.head else event.method.decode("ascii", "replace")
        self.target = event.target.decode("ascii", "replace")
        self.path = self.target.split("?", 1)[0]
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        self.scheme = scheme
        self.peer = connection.peer
        self.local_address = connection.local_address

    @property
    def started(self) -> bool:
        """Whether the response has begun (then an error can only close the connection)."""
        return self._connection.h11.our_state is not h11.SEND_RESPONSE

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return ascii_int(value) if value is not None else None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as it arrives."""
        while True:
            event = await self._connection.next_event(self._connection.limits.body_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise h11.RemoteProtocolError("the body ended early")

    async def read(self, limit: int) -> bytes:
        """The whole body, or BodyTooLarge past ``limit`` bytes."""
        if (self.content_length or 0) > limit:
            raise BodyTooLarge
        parts, size = [], 0
        async for chunk in self.chunks():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            parts.append(chunk)
        return b"".join(parts)

    async def discard(self, cap: int = 256 * 1024 * 1024) -> None:
        """Read and drop what is left of a body of announced length up to ``cap``, so that a
        client still sending it reads the reply instead of a reset connection. A body of no
        announced length (chunked) is not read at all: it could go on without end, and the
        connection is closed instead."""
        length = self.content_length
        if length is None or length > cap:
            return
        with contextlib.suppress(h11.RemoteProtocolError, h11.LocalProtocolError):
            async for _ in self.chunks():
                pass

    async def respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        headers.extend((extra or {}).items())
        await self.respond_parts(status, [body] if body else [], headers)

    async def respond_parts(
        self, status: int, parts: list[bytes], headers: list[tuple[str, str]] | None = None
    ) -> None:
        """A body (JSON unless ``headers`` say otherwise) given in pieces. A small one goes
        out in one write; a large one piece by piece, each written (and drained) in turn and
        let go of as it goes: it is never copied whole into the socket's buffer."""
        length = sum(len(part) for part in parts)
        if headers is None:
            headers = [("Content-Type", "application/json"), ("Content-Length", str(length))]
        head = h11.Response(status_code=status, headers=headers)
        if self.head:  # the GET's head, Content-Length included, and no body
            await self._connection.send_all([head, h11.EndOfMessage()])
            return
        if length <= ONE_WRITE:
            body = [h11.Data(data=part) for part in parts if part]
            await self._connection.send_all([head, *body, h11.EndOfMessage()])
            return
        await self._connection.send(head)
        parts.reverse()
        while parts:
            await self._connection.send(h11.Data(data=parts.pop()))
        await self._connection.send(h11.EndOfMessage())

    async def respond_json(self, status: int, value: Any) -> None:
        await self.respond(status, json.dumps(value, ensure_ascii=False).encode())

    async def start_stream(self, status: int, headers: dict[str, str]) -> None:
        await self._connection.send(h11.Response(status_code=status, headers=list(headers.items())))

    async def write(self, data: bytes) -> None:
        if not self.head:
            await self._connection.send(h11.Data(data=data))

    async def until_gone(self) -> None:
        """Return once the client has closed the connection (for a reply that lasts, such as
        an event stream, which nothing else would end)."""
        await self._connection.until_gone()

    async def end_stream(self) -> None:
        await self._connection.send(h11.EndOfMessage())


Handler = Callable[[Request], Awaitable[None]]


class _Connection:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.limits = limits
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else "local"
        local = writer.get_extra_info("sockname")
        self.local_address = str(local[0]) if isinstance(local, tuple) else ""
        #: Whether the server is waiting on this client: for it to send (an idle or slow
        #: client) or to take what was written (one that does not read its reply). Either may
        #: be closed to make room; one the server is working for may not.
        self.waiting = False
        #: When the client last sent something or took something written to it.
        self.last_heard = time.monotonic()
        self.received = 0

    async def next_event(self, timeout: float) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            await self._receive(timeout)

    async def next_request(self, idle_timeout: float, deadline: float | None) -> Any:
        """The next request head. Until its first byte the client may be idle for
        ``idle_timeout``; from then on (or from ``deadline`` when given) the whole head must
        arrive within the head timeout."""
        if deadline is None and self.h11.trailing_data[0]:
            deadline = time.monotonic() + self.limits.head_timeout  # pipelined: begun
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if deadline is None:
                await self._receive(idle_timeout)
                deadline = time.monotonic() + self.limits.head_timeout
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the request head took too long")
                await self._receive(left)

    async def _receive(self, timeout: float) -> None:
        self.waiting = True
        try:
            data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
        finally:
            self.waiting = False
        self.received += len(data)
        self.last_heard = time.monotonic()
        self.h11.receive_data(data)

    def close_now(self) -> None:
        """Drop the connection at once (its descriptor is free for a newcomer)."""
        self.writer.transport.abort()

    async def until_gone(self) -> None:
        """Return at the client's end of file or reset. Nothing it sends meanwhile is kept:
        no request may follow one whose reply ends only when the connection does."""
        with contextlib.suppress(OSError):
            while await self.reader.read(READ_SIZE):
                pass

    async def send(self, event: Any) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self._drain()

    async def send_all(self, events: list[Any]) -> None:
        """Several events in one write."""
        self.writer.write(b"".join(self.h11.send(event) or b"" for event in events))
        await self._drain()

    async def _drain(self) -> None:
        """Wait until the client has taken enough of what was written. While it takes
        nothing it is waited on like a client slow to send: closed to make room at the cap,
        and cut after the send timeout (its unsent bytes would keep the socket open)."""
        if not self.writer.transport.get_write_buffer_size():
            await self.writer.drain()  # all in the kernel: no wait (and no timer to arm)
        else:
            self.waiting = True
            try:
                async with asyncio.timeout(self.limits.send_timeout):
                    await self.writer.drain()
            except TimeoutError:
                self.close_now()
                raise
            finally:
                self.waiting = False
        self.last_heard = time.monotonic()  # it took its part: not the one waited on longest


class HttpServer:
    def __init__(self, handler: Handler, limits: Limits | None = None) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self._tls: ssl.SSLContext | None = None
        self._connections: set[asyncio.Task[None]] = set()
        #: The connections that count against the cap (one closed for room leaves at once),
        #: and those accepted whose first turn (or TLS handshake) has not come yet.
        self._open: set[_Connection] = set()
        self._starting = 0
        self._shed = ShedLog(log)
        self._listener = Listener(self._make_room, self._adopt, self._shed)

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None) -> int:
        """Listen; returns the port bound (``port`` 0 picks a free one)."""
        self._tls = tls
        return await self._listener.open(host, port)

    async def close(self) -> None:
        self._listener.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _make_room(self) -> bool:
        """Room for one more: at the cap, close the connection the server has waited on
        longest for the least (slow or idle clients, or ones that do not read their reply);
        False when every one is busy."""
        if len(self._open) + self._starting < self.limits.max_connections:
            return True
        waiting = [c for c in self._open if c.waiting]
        if not waiting:
            return False
        victim = min(waiting, key=lambda c: (c.last_heard, c.received))
        self._open.discard(victim)
        victim.close_now()
        self._shed.count("closed to make room")
        return True

    def _adopt(self, sock: socket.socket) -> None:
        self._starting += 1
        task = asyncio.get_running_loop().create_task(self._start_connection(sock))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _start_connection(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                sock,
                ssl=self._tls,
                ssl_handshake_timeout=self.limits.head_timeout if self._tls else None,
            )
        except (OSError, TimeoutError, asyncio.CancelledError):  # SSLError is an OSError
            sock.close()
            self._starting -= 1
            return
        self._starting -= 1
        await self._serve(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(reader, writer, self.limits)
        self._open.add(connection)
        try:
            await self._requests(connection)
        except TimeoutError:
            self._shed.count("closed: too slow")
        except (OSError, asyncio.IncompleteReadError):  # SSLError is an OSError
            pass  # a client that went away: nothing to answer
        except h11.RemoteProtocolError as exc:
            await self._bad_request(connection, exc)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("a request failed")
        finally:
            self._open.discard(connection)
            await self._close(writer)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close once the client took what is left of the reply; one that takes nothing for
        the send timeout is cut (the socket would stay open as long as its bytes wait)."""
        writer.close()
        try:
            async with asyncio.timeout(self.limits.send_timeout):
                await writer.wait_closed()
        except TimeoutError:
            writer.transport.abort()
        except Exception:  # closed with an error: closed all the same
            pass

    async def _requests(self, connection: _Connection) -> None:
        # The first head counts from the connection: connecting is the first byte.
        deadline: float | None = time.monotonic() + self.limits.head_timeout
        while True:
            event = await connection.next_request(self.limits.keep_alive, deadline)
            deadline = None
            if not isinstance(event, h11.Request):
                return  # closed by the client
            request = Request(connection, event, "https" if self._tls else "http")
            await self.handler(request)
            # A GET's empty body is there to take; a body the handler did not read is not:
            # close rather than drain it.
            if connection.h11.their_state is h11.SEND_BODY and not isinstance(
                connection.h11.next_event(), h11.EndOfMessage
            ):
                return
            if connection.h11.our_state is h11.MUST_CLOSE:
                return
            try:
                connection.h11.start_next_cycle()
            except h11.LocalProtocolError:
                return

    @staticmethod
    async def _bad_request(connection: _Connection, exc: h11.RemoteProtocolError) -> None:
        if connection.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint or 400
        body = json.dumps(error_reply(InvalidRequest(f"bad HTTP request: {exc}")))
        with contextlib.suppress(Exception):
            await connection.send(
                h11.Response(
                    status_code=status,
                    headers=[
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                        ("Connection", "close"),
                    ],
                )
            )
            await connection.send(h11.Data(data=body.encode()))
            await connection.send(h11.EndOfMessage())
