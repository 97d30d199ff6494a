"""Pure logic of the live view: the stream's framing, the terminal view's state, lines."""

from __future__ import annotations

import io
import time

from spad.cli import livefeed
from spad.cli.client import ServerEvent, read_events
from spad.cli.tables import since
from spad.cli.watch import WatchState


def test_server_sent_events_framing() -> None:
    raw = (
        b": spad event stream\n\n"
        b'id: 7\r\nevent: task\r\ndata: {"status": "running"}\r\n\r\n'
        b"retry: 10\n\n"  # no data: no event
        b'id: 8\nevent: workflow\ndata:{"status": "success0"}\n\n'
        b": keep-alive\n\n"
    )
    got = list(read_events(io.BytesIO(raw)))
    assert [(m.id, m.kind, m.data, m.comment) for m in got] == [
        (None, "", {}, "spad event stream"),
        (7, "task", {"status": "running"}, None),
        (8, "workflow", {"status": "success0"}, None),
        (None, "", {}, "keep-alive"),
    ]


def _event(what: str, event_id: int = 1, **data: object) -> ServerEvent:
    base = {"project": "pr1", "workflow": "wf1", "at": "2026-01-01T00:00:00.000Z"}
    return ServerEvent(event_id, what, {**base, **data})


def test_the_watch_state_follows_runs_restarts_and_tasks() -> None:
    state = WatchState("wf1")
    state.add_workflow(
        "pr1",
        "wf1",
        {"status": "success0", "run_id": 1, "tasks": [{"name": "t1", "status": "success0"}]},
    )
    assert not state.apply(_event("task", workflow="other", run_id=9, task="x", status="new"))
    assert state.apply(_event("workflow", run_id=2, status="running"))
    assert state.apply(_event("task", run_id=2, task="t1", status="running", attempt=1, pid=42))
    assert state.apply(_event("task", run_id=2, task="t1", status="rerun", attempt=1))
    assert state.apply(_event("task", run_id=2, task="t1", status="running", attempt=2))
    header, rows = state.rows(now=time.time())
    assert header[0] == "task" and rows[0][:5] == ["t1", "running", "2", "-", "-"]
    overview = WatchState(None)
    overview.workflows = state.workflows
    _, rows = overview.rows(now=time.time())
    assert rows[0][:5] == ["pr1", "wf1", "running", "2", "1"]  # one restart in run 2


def test_event_lines_show_text_as_text() -> None:
    assert since("1970-01-01T00:00:00.000Z", 59) == "59s"
    alarm = _event("alarm", id=3, source="s", kind="k", state="open", message="a\x1b[31mb\n")
    line = livefeed.line(alarm, utc=True)
    assert line.startswith("2026-01-01 00:00:00 UTC  alarm 3 pr1/s  open  k")
    assert line.endswith("a\\x1b[31mb\\n")
