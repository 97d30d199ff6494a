"""Defects of the HTTP layer found by a probe: clients that never read their reply, event
streams whose client went away, HEAD requests, and a Last-Event-ID that is not a plain number
or is beyond the newest event. A real server on a free port; every socket is closed."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from spad.server.http import Handler, HttpServer, Limits, Request
from tests.conftest import Server, run_spad, task, wait_for
from tests.integration.test_read_only import read_only_token
from tests.integration.test_slow_clients import sockets

LIST = b'{"jsonrpc": "2.0", "method": "list", "id": 1}'


def address(server: Server) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(server.url)
    return parts.hostname or "", parts.port or 0


def log_of(server: Server) -> str:
    assert server.stderr_path is not None
    return server.stderr_path.read_text()


def answers_list(server: Server, timeout: float = 2.0) -> bool:
    """Whether a `list` on a new connection is answered (not refused, not left waiting)."""
    host, port = address(server)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", "/rpc", LIST, {"Authorization": f"Bearer {server.token}"})
        response = connection.getresponse()
        return response.status == 200 and "result" in json.loads(response.read())
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def send_and_stall(server: Server, opened: list[socket.socket], head: bytes) -> socket.socket:
    """A client that sends ``head`` and never reads its reply (a small receive window, so the
    server's writes soon wait on it)."""
    sock = socket.socket()
    opened.append(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(address(server))
    sock.sendall(head)
    sock.settimeout(30)
    sock.recv(1, socket.MSG_PEEK)  # the reply has begun: left unread, it fills the buffers
    return sock


def file_request(server: Server, token: str) -> bytes:
    (server.home / "data" / "big").write_bytes(b"x" * (20 * 1024 * 1024))
    host, port = address(server)
    return (
        f"GET /files/data/big HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


def logs_request(server: Server, token: str) -> bytes:
    """Eight `logs` calls in a row whose replies are 1 MiB each (a task printed 3 MB): more
    than the kernel's send buffer (4 MiB at most by default) takes for a client."""
    server.script("chatty", "yes 0123456789abcdef | head -c 3000000\n")
    server.define("wf1", task("t1", "chatty"))
    server.call("run", project="pr1", workflow="wf1")
    server.wait_status("wf1", "success0")
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "logs",
            "params": {"project": "pr1", "workflow": "wf1", "task": "t1"},
            "id": 1,
        }
    ).encode()
    host, port = address(server)
    head = (
        f"POST /rpc HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return (head.encode() + body) * 8


@pytest.mark.parametrize("request_of", [file_request, logs_request], ids=["file", "logs"])
def test_clients_that_never_read_their_reply_make_room_at_the_cap(
    server: Server, request_of: object
) -> None:
    """Three clients fill a cap of three with replies they never read (a 20 MB file, 1 MiB
    `logs` replies; the read-only token is enough): a new `list` is answered within seconds
    all the same, as the contract says of slow clients."""
    server.stop()
    server.start("--max-connections", "3")
    assert callable(request_of)
    head = request_of(server, read_only_token(server))
    with sockets() as opened:
        for _ in range(3):
            send_and_stall(server, opened, head)
        wait_for(lambda: answers_list(server), timeout=5, what="a list at the cap")
    assert "Traceback" not in log_of(server)


def open_stream(
    server: Server,
    opened: list[socket.socket],
    last_id: bytes | None = None,
    until: bytes = b"spad event stream\n\n",
) -> bytes:
    """``GET /events`` on a new socket (with ``Last-Event-ID: last_id``, raw bytes); returns
    what came until ``until`` (by default the stream's first comment)."""
    sock = socket.create_connection(address(server), timeout=10)
    opened.append(sock)
    host, port = address(server)
    resume = b"Last-Event-ID: " + last_id + b"\r\n" if last_id is not None else b""
    sock.sendall(
        f"GET /events HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {server.token}\r\n".encode()
        + resume
        + b"\r\n"
    )
    return read_until(sock, until)


def read_until(sock: socket.socket, wanted: bytes, timeout: float = 10.0) -> bytes:
    """What ``sock`` receives until ``wanted`` came (fails at EOF or after ``timeout``)."""
    received = b""
    deadline = time.monotonic() + timeout
    while wanted not in received:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} did not come within {timeout:g}s: {received[-300:]!r}"
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        assert data, f"the server closed the stream before {wanted!r}: {received[-300:]!r}"
        received += data
    return received


def test_an_event_stream_whose_client_went_away_frees_its_slot_at_once(server: Server) -> None:
    """Two streams fill a cap of two; once their clients close, a `list` is answered within
    seconds, not after the keep-alives fail (14 s apart)."""
    server.stop()
    server.start("--max-connections", "2")
    with sockets() as opened:
        open_stream(server, opened)
        open_stream(server, opened)
        assert not answers_list(server), "the streams should hold both slots"
        for sock in opened:
            sock.close()
        wait_for(lambda: answers_list(server), timeout=5, what="the streams' slots to free")
    assert "Traceback" not in log_of(server)


def head_then_list(server: Server, path: str, token: bool) -> http.client.HTTPResponse:
    """HEAD ``path``, then a `list` on the same kept-alive connection: a body after the HEAD's
    head would be read as the `list` reply's status line."""
    host, port = address(server)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    auth = {"Authorization": f"Bearer {server.token}"}
    try:
        connection.request("HEAD", path, headers=auth if token else {})
        head = connection.getresponse()
        assert head.read() == b""
        connection.request("POST", "/rpc", LIST, auth)
        listed = connection.getresponse()
        assert listed.status == 200 and "result" in json.loads(listed.read())
        return head
    finally:
        connection.close()


def get(server: Server, path: str, token: bool) -> http.client.HTTPResponse:
    host, port = address(server)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(
            "GET", path, headers={"Authorization": f"Bearer {server.token}"} if token else {}
        )
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


HEADS = [
    ("/rpc", False, 401),
    ("/rpc", True, 404),
    ("/metrics", False, 401),
    ("/metrics", True, 200),
    ("/ui/", False, 200),
    ("/files/data/small", True, 200),
    ("/nowhere", True, 404),
]


def test_head_is_answered_as_get_without_a_body(server: Server) -> None:
    """As nginx does (RFC 9110: HEAD is GET without the content): the GET's status and
    headers, no body, the connection still usable, and nothing in the log."""
    (server.home / "data" / "small").write_bytes(b"hello\n")
    for path, token, status in HEADS:
        head = head_then_list(server, path, token)
        assert head.status == status, (path, token, head.status)
        full = get(server, path, token)
        assert full.status == status
        for name in ("Content-Type", "Content-Length", "X-Content-SHA256"):
            assert head.getheader(name) == full.getheader(name), (path, name)
    assert "Traceback" not in log_of(server) and "a request failed" not in log_of(server)


def test_head_of_the_event_stream_ends_at_its_head(server: Server) -> None:
    head = head_then_list(server, "/events", True)
    assert head.status == 200
    assert head.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    assert "Traceback" not in log_of(server)


def add_alarm(server: Server, kind: str) -> None:
    """An alarm row written as the watcher writes it: an `alarm` event in the journal."""
    with contextlib.closing(server.db()) as conn, conn:
        conn.execute(
            "INSERT INTO alarms (project, source, kind, severity, state, count,"
            " first_seen, last_seen, message, origin, logged_at)"
            " VALUES ('pr1', 'probe', ?, 'info', 'open', 1, '', '', 'm', 'spad', '')",
            (kind,),
        )


def event_ids(text: bytes) -> list[int]:
    return [int(n) for n in re.findall(rb"^id: (\d+)$", text, re.MULTILINE)]


@pytest.mark.parametrize(
    "last_id",
    [b"\xb2", "\N{SUPERSCRIPT TWO}".encode(), b"1\xb9", "\N{FULLWIDTH DIGIT ONE}".encode()],
    ids=["latin-1", "utf-8", "trailing", "fullwidth"],
)
def test_a_last_event_id_of_other_digits_is_taken_as_absent(server: Server, last_id: bytes) -> None:
    add_alarm(server, "before")
    with sockets() as opened:
        opened_at = open_stream(server, opened, last_id)
        assert event_ids(opened_at) == []  # nothing replayed: as without the header
        add_alarm(server, "after")
        received = read_until(opened[0], b'"after"', timeout=5)
        assert b'"before"' not in received
    assert "Traceback" not in log_of(server)


def test_a_last_event_id_beyond_the_newest_event_streams_from_now(server: Server) -> None:
    """After spa.db came back from a backup the client's id may be ahead of the journal."""
    add_alarm(server, "before")
    with sockets() as opened:
        open_stream(server, opened, b"99999999")
        add_alarm(server, "after")
        received = read_until(opened[0], b'"after"', timeout=5)
        assert b'"before"' not in received and len(event_ids(received)) == 1
    assert "Traceback" not in log_of(server)


def test_a_resumed_stream_still_replays_what_it_missed(server: Server) -> None:
    """The resume id within the journal keeps its meaning (no loss, no repeat)."""
    add_alarm(server, "first")
    add_alarm(server, "second")
    with contextlib.closing(server.db()) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM events ORDER BY id")]
    with sockets() as opened:
        received = open_stream(server, opened, str(ids[-2]).encode(), f"id: {ids[-1]}\n".encode())
        assert event_ids(received) == [ids[-1]]


@contextlib.contextmanager
def http_server(handler: Handler, limits: Limits) -> Iterator[tuple[HttpServer, int]]:
    """The HTTP layer alone, in a thread, with ``handler``; yields it and its port."""
    loop = asyncio.new_event_loop()
    server = HttpServer(handler, limits)
    port = loop.run_until_complete(server.start("127.0.0.1", 0, None))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server, port
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_client_that_takes_nothing_is_cut_at_the_send_timeout() -> None:
    """Below the cap too: its connection ends (socket and all) instead of waiting for ever."""

    async def big(request: Request) -> None:
        await request.start_stream(200, {"Content-Length": str(20 * 1024 * 1024)})
        for _ in range(20):
            await request.write(b"x" * (1024 * 1024))
        await request.end_stream()

    with http_server(big, Limits(send_timeout=0.5)) as (server, port), sockets() as opened:
        sock = socket.socket()
        opened.append(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(10)
        sock.recv(1, socket.MSG_PEEK)
        wait_for(lambda: not server._connections, timeout=5, what="the connection to end")


def test_an_event_stream_ends_once_its_token_is_rotated(server: Server) -> None:
    """A rotated token's stream went on receiving every event, while the README says the old
    token stops working at once: nothing is sent to it after the rotation, and it ends."""
    server.define("w", task("t", "simple", "0"))
    with sockets() as opened:
        open_stream(server, opened)
        rotated = run_spad("token", "--rotate", "--home", str(server.home))
        assert rotated.returncode == 0, rotated.stderr
        server.call("run", workflow="w")  # with the new token: events the old stream must miss
        server.wait_status("w", "success0")
        after = read_to_end(opened[0])
        assert b"id: " not in after


def read_to_end(sock: socket.socket, timeout: float = 20.0) -> bytes:
    """What ``sock`` receives until the server closes it (fails after ``timeout``)."""
    received = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"the stream did not end within {timeout:g}s: {received[-300:]!r}"
        sock.settimeout(left)
        with contextlib.suppress(TimeoutError):
            data = sock.recv(65536)
            if not data:
                return received
            received += data
