"""``spa_ctl logs -f`` without ``-t``: follow every task of a run at once, each line prefixed
by its task's name (as ``docker compose logs -f``), a task's new attempts included."""

from __future__ import annotations

import time
from typing import Any

import click

from spad.cli.context import Context
from spad.cli.tables import printable_text

INTERVAL = 0.2
ACTIVE = ("running", "stopping")


def _echo(prefix: str, text: str) -> None:
    # Lines end at "\n" only: a "\r" or "\x85" is shown escaped inside its line, not split.
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()  # the text ended with its last line's "\n"
    for line in lines:  # a line not ended yet is printed whole too, as it was
        click.echo(prefix + printable_text(line))


def follow_all(ctx: Context, params: dict[str, Any], lines: int | None) -> None:
    """Until the run ended and every task's output was printed."""
    state = ctx.call("status", **params)
    if state["run_id"] is None:
        ctx.call("logs", **params)  # the server says why there is nothing to follow
        return
    where = {"project": state["project"], "workflow": state["workflow"], "run_id": state["run_id"]}
    width = max(len(t["name"]) for t in state["tasks"])
    reading: dict[str, tuple[int, int]] = {}  # task -> (attempt, offset)
    for task in state["tasks"]:
        if task["attempt"]:
            offset = 0
            if lines is not None:  # the last lines first, then what comes
                chunk = ctx.call(
                    "logs",
                    task=task["name"],
                    attempt=task["attempt"],
                    tail=lines,
                    offset=0,
                    **where,
                )
                _echo(f"{task['name']:<{width}} | ", chunk["text"])
                offset = chunk["offset"]
            reading[task["name"]] = (task["attempt"], offset)
    while True:
        state = ctx.call("status", **where)
        printed = [_catch_up(ctx, where, t, reading, width) for t in state["tasks"] if t["attempt"]]
        if not any(printed) and state["status"] not in ACTIVE:
            return
        time.sleep(INTERVAL)


def _catch_up(
    ctx: Context,
    where: dict[str, Any],
    task: dict[str, Any],
    reading: dict[str, tuple[int, int]],
    width: int,
) -> bool:
    """Print what ``task`` wrote since the last look, through its attempts up to the latest;
    True when there was something."""
    attempt, offset = reading.get(task["name"], (1, 0))
    printed = False
    while True:
        chunk = ctx.call("logs", task=task["name"], attempt=attempt, offset=offset, **where)
        _echo(f"{task['name']:<{width}} | ", chunk["text"])
        printed = printed or chunk["offset"] != offset
        offset = chunk["offset"]
        if attempt >= task["attempt"]:
            break
        attempt, offset = attempt + 1, 0  # the earlier attempt ended: on to the next
    reading[task["name"]] = (attempt, offset)
    return printed
