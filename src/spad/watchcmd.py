"""``spa_ctl watch``: a live view in the terminal, fed by the event stream (no polling).

Without ``-w``: every workflow (of ``-p`` when given) with its status, run, restarts and how
long it has been so. With ``-w``: that workflow's tasks. The screen is redrawn at each change
(at most ``FRAMES_PER_SECOND`` times a second); into a pipe, each frame is printed after the
last, so a script can read it.
"""

from __future__ import annotations

import calendar
import io
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from spad import livefeed
from spad.cli_context import Context, pass_ctx
from spad.client import ServerEvent
from spad.eventcmd import stream

FRAMES_PER_SECOND = 10
CLEAR = "\x1b[H\x1b[2J"


def age(iso: str | None, now: float) -> str:
    """How long ago ``iso`` was: ``42s``, ``3m``, ``5h``, ``2d``."""
    if not iso:
        return "-"
    try:
        then = calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "-"
    seconds = max(0, int(now - then))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
            header = ["task", "status", "attempt", "exit", "pid/job", "since"]
            return header, [
                [
                    name,
                    row["status"],
                    _cell(row["attempt"]),
                    _cell(row["exit_code"]),
                    _cell(row["pid"]),
                    age(row["since"], now),
                ]
                for name, row in self.tasks.items()
            ]
        header = ["project", "workflow", "status", "run", "restarts", "since"]
        rows = []
        for (project, name), entry in sorted(self.workflows.items()):
            restarts = sum(max(a - 1, 0) for a in entry["attempts"].values())
            rows.append(
                [
                    project,
                    name,
                    entry["status"],
                    _cell(entry["run_id"]),
                    str(restarts),
                    age(entry["since"], now),
                ]
            )
        return header, rows


def _cell(value: Any) -> str:
    return "-" if value is None else livefeed.printable(value)


def render(state: WatchState, title: str, width: int) -> str:
    from rich.console import Console
    from rich.table import Table

    header, rows = state.rows(time.time())
    table = Table(box=None, pad_edge=False)
    for column in header:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    console.print(title, soft_wrap=True)
    console.print(table)
    return out.getvalue()


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
        for entry in ctx.call("list", project=project)["projects"]:
            for wf in entry["workflows"]:
                status = ctx.call("status", project=entry["name"], workflow=wf["name"])
                state.add_workflow(entry["name"], wf["name"], status)
    title = f"{project}/{workflow}" if workflow else (project or "every project")
    terminal = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if terminal else 100

    def draw() -> None:
        frame = render(state, f"spad watch · {title} · {ctx.client.url} · Ctrl-C ends", width)
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
