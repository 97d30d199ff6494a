"""``spa_ctl watch``: a live view in the terminal, fed by the event stream (no polling).

Without ``-w``: every workflow (of ``-p`` when given) with its status, run, restarts and how
long it has been so. With ``-w``: that workflow's tasks. The screen is redrawn at each change
(at most ``FRAMES_PER_SECOND`` times a second); into a pipe, each frame is printed after the
last, so a script can read it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from spad.cli.client import ServerEvent
from spad.cli.context import Context, pass_ctx
from spad.cli.events import stream
from spad.cli.tables import Column, cell, render, since, width

FRAMES_PER_SECOND = 10
CLEAR = "\x1b[H\x1b[2J"


class WatchState:
    """What the view shows, kept up to date by events."""

    def __init__(self, workflow: str | None) -> None:
        self.workflow = workflow
        #: (project, workflow) -> {status, run_id, since, attempts: {task: attempt}}
        self.workflows: dict[tuple[str, str], dict[str, Any]] = {}
        #: task -> {status, attempt, exit_code, pid, since}: the watched workflow's run
        self.tasks: dict[str, dict[str, Any]] = {}
        self.run_id: int | None = None
        self.events = 0

    def add_workflow(self, project: str, name: str, status: dict[str, Any]) -> None:
        tasks = status.get("tasks", [])
        times = [t.get("ended_at") or t.get("started_at") for t in tasks]
        self.workflows[(project, name)] = {
            "status": status["status"],
            "run_id": status["run_id"],
            "since": max((t for t in times if t), default=None),
            "attempts": {t["name"]: t.get("attempt") or 0 for t in tasks},
        }
        if name == self.workflow:
            self.run_id = status["run_id"]
            self.tasks = {
                t["name"]: {
                    "status": t["status"],
                    "attempt": t.get("attempt"),
                    "exit_code": t.get("exit_code"),
                    "pid": t.get("job") or t.get("pid"),
                    "since": t.get("ended_at") or t.get("started_at"),
                }
                for t in tasks
            }

    def apply(self, event: ServerEvent) -> bool:
        """Take one event in; True when the view changed."""
        data = event.data
        key = (str(data.get("project")), str(data.get("workflow")))
        if event.kind not in ("workflow", "task") or key not in self.workflows:
            return False
        self.events += 1
        entry = self.workflows[key]
        if event.kind == "workflow":
            if data["run_id"] != entry["run_id"]:
                entry["attempts"] = {}
            entry.update(status=data["status"], run_id=data["run_id"], since=data["at"])
        elif data["run_id"] == entry["run_id"]:
            entry["attempts"][data["task"]] = data.get("attempt") or 0
        if key[1] == self.workflow and event.kind == "task":
            self._task(data)
        return True

    def _task(self, data: dict[str, Any]) -> None:
        if self.run_id is None or data["run_id"] > self.run_id:
            self.run_id = data["run_id"]
            self.tasks = {}
        if data["run_id"] == self.run_id:
            row = self.tasks.setdefault(data["task"], {})
            row.update(
                pid=data.get("pid"),
                status=data["status"],
                attempt=data.get("attempt"),
                exit_code=data.get("exit_code"),
                since=data["at"],
            )

    def rows(self, now: float) -> tuple[list[str], list[list[str]]]:
        if self.workflow is not None:
            header = [c.title for c in TASK_COLUMNS]
            return header, [
                [
                    name,
                    row["status"],
                    cell(row["attempt"]),
                    cell(row["exit_code"]),
                    cell(row["pid"]),
                    since(row["since"], now),
                ]
                for name, row in self.tasks.items()
            ]
        header = [c.title for c in WORKFLOW_COLUMNS]
        rows = []
        for (project, name), entry in sorted(self.workflows.items()):
            restarts = sum(max(a - 1, 0) for a in entry["attempts"].values())
            rows.append(
                [
                    project,
                    name,
                    entry["status"],
                    cell(entry["run_id"]),
                    str(restarts),
                    since(entry["since"], now),
                ]
            )
        return header, rows


TASK_COLUMNS = (
    Column("task", keep=True),
    Column("status", keep=True),
    Column("attempt", right=True),
    Column("exit", right=True),
    Column("pid/job", right=True),
    Column("since", right=True),
)
WORKFLOW_COLUMNS = (
    Column("project", keep=True),
    Column("workflow", keep=True),
    Column("status", keep=True),
    Column("run", right=True),
    Column("restarts", right=True),
    Column("since", right=True),
)


def render_frame(state: WatchState, title: str, limit: int | None) -> str:
    """The view as text that fits ``limit`` columns (names and statuses are never cut)."""
    _, rows = state.rows(time.time())
    columns = TASK_COLUMNS if state.workflow is not None else WORKFLOW_COLUMNS
    return title + "\n" + render(columns, rows, limit, wide=False) + "\n"


@click.command()
@click.option("-p", "--project", help="only this project (with -w: default the current one)")
@click.option("-w", "--workflow", help="show this workflow's tasks")
@pass_ctx
def watch(ctx: Context, project: str | None, workflow: str | None) -> None:
    """A live view of the workflows (or, with -w, of one workflow's tasks), redrawn at each
    transition. Ctrl-C ends."""
    state = WatchState(workflow)
    # Where the journal stands before the first look: the stream resumes there, so nothing
    # that happens while the view is being built is missed.
    start = ctx.call("events", limit=1)["last_id"]
    if workflow is not None:
        status = ctx.call("status", project=project, workflow=workflow)
        project = status["project"]
        state.add_workflow(status["project"], workflow, status)
    else:
        shown = [
            {"project": entry["name"], "workflow": wf["name"]}
            for entry in ctx.call("list", project=project)["projects"]
            for wf in entry["workflows"]
        ]
        for names, status in zip(shown, ctx.call_each("status", shown), strict=True):
            state.add_workflow(names["project"], names["workflow"], status)
    title = f"{project}/{workflow}" if workflow else (project or "every project")
    terminal = sys.stdout.isatty()

    def draw() -> None:
        heading = f"spad watch · {title} · {ctx.client.url} · Ctrl-C ends"
        frame = render_frame(state, heading, width())
        click.echo(CLEAR + frame if terminal else frame, nl=not terminal)
        sys.stdout.flush()

    messages: queue.Queue[ServerEvent | None] = queue.Queue()

    ended: list[int | str | None] = []

    def read() -> None:
        try:
            for message in stream(ctx, start):
                messages.put(message)
        except SystemExit as exc:  # refused or unreachable: said on stderr
            ended.append(exc.code)
        finally:
            messages.put(None)

    threading.Thread(target=read, daemon=True).start()
    draw()
    try:
        _redraw_on_change(state, messages, draw, terminal)
    except KeyboardInterrupt:
        return
    sys.exit(ended[0] if ended else 0)


def _redraw_on_change(
    state: WatchState,
    messages: queue.Queue[ServerEvent | None],
    draw: Callable[[], None],
    terminal: bool,
) -> None:
    """Redraw at most FRAMES_PER_SECOND times a second, and every second on a terminal (the
    "since" column ages)."""
    drawn = time.monotonic()
    pending = False
    while True:
        try:
            message = messages.get(timeout=1 / FRAMES_PER_SECOND)
        except queue.Empty:
            message = ServerEvent(comment="")
        if message is None:
            return  # the stream ended for good (its reason is on stderr)
        if message.comment is None and state.apply(message):
            pending = True
        since = time.monotonic() - drawn
        if (pending and since >= 1 / FRAMES_PER_SECOND) or (terminal and since >= 1):
            draw()
            drawn, pending = time.monotonic(), False
