"""GET /events: every transition an event, from whichever process wrote it; resume with
Last-Event-ID; heartbeats; a client that stops reading is dropped; the journal is bounded."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spad import transitions
from spad.cli.client import ServerEvent, read_events
from spad.store import runs
from spad.store.sqlite import EVENTS_KEPT, MIGRATIONS, connect, migrate, transaction
from tests.conftest import Server, task, wait_for


class Listener:
    """A stream client in a thread: what it received, in order."""

    def __init__(self, server: Server, last_event_id: int | None = None) -> None:
        self.received: list[ServerEvent] = []
        host, port = server.url.removeprefix("http://").split(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Authorization": f"Bearer {server.token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self._connection.request("GET", "/events", headers=headers)
        self._response = self._connection.getresponse()
        assert self._response.status == 200
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_for(lambda: self.received, what="the stream to open")

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            for message in read_events(self._response):
                self.received.append(message)

    def close(self) -> None:
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        self._response.close()
        self._connection.close()

    @property
    def events(self) -> list[ServerEvent]:
        return [m for m in list(self.received) if m.comment is None]

    def of(self, kind: str, **fields: Any) -> list[ServerEvent]:
        return [
            e
            for e in self.events
            if e.kind == kind and all(e.data.get(k) == v for k, v in fields.items())
        ]

    def statuses(self, kind: str, **fields: Any) -> list[str]:
        return [e.data["status"] for e in self.of(kind, **fields)]


@pytest.fixture
def listen(server: Server) -> Iterator[Any]:
    made: list[Listener] = []

    def make(last_event_id: int | None = None) -> Listener:
        listener = Listener(server, last_event_id)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


def test_every_transition_of_a_run_is_an_event_even_one_of_a_millisecond(
    server: Server, listen: Any
) -> None:
    server.define(
        "wf1",
        task("quick", "simple", "0", exec="await"),
        task("fails", "error", "3", "0", exec="await", retries=1, retry_delay=0.05),
        on_failure="continue",
    )
    stream = listen()
    assert stream.received[0].comment == "spad event stream"
    run_id = server.call("run", project="pr1", workflow="wf1")["run_id"]
    wait_for(lambda: stream.statuses("workflow", run_id=run_id)[-1:] == ["error(3)"])
    assert stream.statuses("workflow", run_id=run_id) == ["running", "error(3)"]
    assert stream.statuses("task", task="quick") == ["new", "running", "success0"]
    assert stream.statuses("task", task="fails") == [
        "new",
        "running",
        "error(3)",
        "rerun",
        "running",
        "error(3)",
    ]
    ended = stream.of("task", task="fails")[-1].data
    assert ended["project"] == "pr1" and ended["workflow"] == "wf1"
    assert (ended["run_id"], ended["attempt"], ended["exit_code"]) == (run_id, 2, 3)
    assert ended["at"].endswith("Z")
    ids = [e.id for e in stream.events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_stop_and_its_tasks_are_events(server: Server, listen: Any) -> None:
    server.define("wf1", task("t1", "simple", "60"))
    stream = listen()
    server.call("run", project="pr1", workflow="wf1")
    wait_for(lambda: "running" in stream.statuses("task", task="t1"))
    server.call("stop", project="pr1", workflow="wf1")
    wait_for(lambda: stream.statuses("workflow")[-1:] == ["stopped"])
    assert stream.statuses("workflow") == ["running", "stopping", "stopped"]
    assert stream.statuses("task", task="t1") == ["new", "running", "stopping", "stopped"]


def test_last_event_id_resumes_without_loss(server: Server, listen: Any) -> None:
    server.define("wf1", task("t1", "simple", "0"), task("t2", "simple", "0"))
    first = listen()
    server.call("run", project="pr1", workflow="wf1")
    wait_for(lambda: first.statuses("workflow")[-1:] == ["success0"])
    seen = first.events
    # A client that saw only the first three comes back: it gets the rest, in order, once.
    resumed = listen(seen[2].id)
    wait_for(lambda: len(resumed.events) >= len(seen) - 3)
    assert [e.id for e in resumed.events] == [e.id for e in seen[3:]]
    assert [e.data for e in resumed.events] == [e.data for e in seen[3:]]
    # What happened while nobody was connected comes too.
    last = seen[-1].id
    server.call("run", project="pr1", workflow="wf1")
    server.wait_status("wf1", "success0")
    wait_for(lambda: server.status("wf1")["run_id"] == 2)
    later = listen(last)
    wait_for(lambda: later.statuses("workflow", run_id=2)[-1:] == ["success0"])
    assert later.events[0].id == last + 1
    assert [e.id for e in later.events] == list(range(last + 1, later.events[-1].id + 1))


def test_the_stream_carries_alarm_transitions(server: Server, listen: Any) -> None:
    stream = listen()
    server.call("signal_raise", project="pr1", source="ana", kind="drift", severity="warning")
    wait_for(lambda: stream.of("alarm"))
    opened = stream.of("alarm")[0].data
    assert (opened["state"], opened["severity"], opened["kind"]) == ("open", "warning", "drift")
    server.call("alarm_ack", id=opened["id"])
    server.call("alarm_clear", id=opened["id"])
    wait_for(lambda: [e.data["state"] for e in stream.of("alarm")][-1:] == ["cleared"])
    assert [e.data["state"] for e in stream.of("alarm")] == ["open", "acknowledged", "cleared"]


def test_the_stream_needs_the_token(server: Server) -> None:
    request = urllib.request.Request(server.url + "/events")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 401


def test_a_heartbeat_comment_comes_within_15_seconds(server: Server, listen: Any) -> None:
    stream = listen()
    opened = time.monotonic()
    wait_for(lambda: len(stream.received) >= 2, timeout=20, what="a heartbeat")
    assert stream.received[1].comment == "keep-alive"
    assert time.monotonic() - opened < 15.5


def test_a_client_that_stops_reading_is_dropped(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect((host, int(port)))
    reader.sendall(
        f"GET /events HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {server.token}\r\n\r\n".encode()
    )
    reader.settimeout(10)
    head = b""
    while b"spad event stream" not in head:
        head += reader.recv(4096)
    # 2,000 alarms with a 10 kB message each: 20 MB of events this client does not read.
    message = "x" * 10_000
    with contextlib.closing(server.db()) as conn:
        for _ in range(20):
            with conn:
                conn.executemany(
                    "INSERT INTO alarms (project, source, kind, severity, state, count,"
                    " first_seen, last_seen, message, origin, logged_at)"
                    " VALUES ('pr1', 'ana', 'k', 'info', 'open', 1, '', '', ?, 'spad', '')",
                    [(message,)] * 100,
                )
    assert server.call("list")["projects"] == []  # the server answers meanwhile
    received = 0
    deadline = time.monotonic() + 60
    while chunk := reader.recv(1 << 20):
        received += len(chunk)
        assert time.monotonic() < deadline, "the server never closed the stream"
    reader.close()
    assert received < 20 * 100 * 10_000  # closed before it sent everything: dropped


def test_the_journal_keeps_the_newest_events(conn: sqlite3.Connection, tmp_path: Path) -> None:
    conn.execute("INSERT INTO projects (ext_id, name) VALUES (1, 'pr1')")
    conn.execute("INSERT INTO workflows (project_id, ext_id, name) VALUES (1, 1, 'wf1')")
    run_id = runs.create(conn, 1, [])
    with transaction(conn):
        for number in range(EVENTS_KEPT + 50):
            runs.end(conn, run_id, f"error({number % 2 + 1})", finished=False)
            transitions.record_transition(conn, run_id, None, "", "", {})  # cuts the journal
    count, oldest, newest = conn.execute("SELECT count(*), min(id), max(id) FROM events").fetchone()
    assert count == EVENTS_KEPT
    assert newest - oldest + 1 == EVENTS_KEPT
    assert newest == EVENTS_KEPT + 51  # the run's start, then each change


def test_writing_the_same_status_again_is_no_event(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO projects (ext_id, name) VALUES (1, 'pr1')")
    conn.execute("INSERT INTO workflows (project_id, ext_id, name) VALUES (1, 1, 'wf1')")
    run_id = runs.create(conn, 1, [])
    runs.set_runner(conn, run_id, 1, None)
    runs.mark_stopping(conn, run_id)
    runs.mark_stopping(conn, run_id)
    kinds = conn.execute("SELECT kind, data ->> '$.status' FROM events ORDER BY id").fetchall()
    assert [tuple(k) for k in kinds] == [("workflow", "running"), ("workflow", "stopping")]


def test_the_status_triggers_build_each_event_from_the_row_alone(conn: sqlite3.Connection) -> None:
    """A join compiled into every statement that writes a status, and a cut of the journal at
    every event, were a third of a runner's SQLite time at its stop (migration 12)."""
    triggers = dict(
        conn.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'events_%'").fetchall()
    )
    for name in ("events_run_started", "events_run_status", "events_task_added"):
        assert "JOIN" not in triggers[name] and "DELETE" not in triggers[name], name
    assert "JOIN" not in triggers["events_task_status"]
    assert "DELETE" not in triggers["events_task_status"]


def test_a_store_of_the_version_before_names_its_runs_events(tmp_path: Path) -> None:
    path = tmp_path / "spa.db"
    old = connect(path)
    for number, migration in enumerate(MIGRATIONS[:11]):
        old.executescript(f"BEGIN; {migration}; PRAGMA user_version = {number + 1}; COMMIT;")
    old.execute("INSERT INTO projects (ext_id, name) VALUES (1, 'pr1')")
    old.execute("INSERT INTO workflows (project_id, ext_id, name) VALUES (1, 1, 'wf1')")
    old.execute(
        "INSERT INTO tasks (workflow_id, ext_id, name, place, exec, function, params, retries,"
        " retry_delay, stop_signal, stop_timeout, env, cwd)"
        " VALUES (1, 1, 't', 1, 'await', 'simple', '[]', 1, 1, 'SIGTERM', 6, '{}', 'data')"
    )
    # As the version before wrote a run: no names kept in its rows.
    old.execute("INSERT INTO runs (workflow_id, status, started_at) VALUES (1, 'running', '')")
    old.execute(
        f"INSERT INTO run_tasks (run_id, {runs.RUN_TASK_COPY}, status)"
        f" SELECT 1, {runs.RUN_TASK_COPY}, 'new' FROM tasks WHERE workflow_id = 1"
    )
    run_id = 1
    old.close()
    conn = connect(path)
    migrate(conn)
    transitions.move_run(conn, run_id, "running", transitions.STOP_RUN, "stopping")
    transitions.move_task(conn, run_id, "t", "new", transitions.CANCEL, "not run")
    newest = [json.loads(data) for (data,) in conn.execute("SELECT data FROM events")][-2:]
    assert [(e["project"], e["workflow"], e["status"]) for e in newest] == [
        ("pr1", "wf1", "stopping"),
        ("pr1", "wf1", "not run"),
    ]
    conn.close()
