"""Readable tables for spa_ctl (rich), kept out of the CLI's import path until needed."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _time(value: str | None) -> str:
    """``2026-11-28T04:08:31.123Z`` shown as ``2026-11-28 04:08:31``."""
    return value[:19].replace("T", " ") if value else "-"


def _console() -> Console:
    """The terminal's width on a terminal; wide enough never to cut a cell in a pipe or file."""
    console = Console(soft_wrap=True)
    return console if console.is_terminal else Console(soft_wrap=True, width=400)


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column.replace("_", " "), no_wrap=True)
    return table


def status_table(result: dict[str, Any]) -> None:
    console = _console()
    run = f"run {result['run_id']}" if result["run_id"] is not None else "never run"
    console.print(
        f"{result['project']}/{result['workflow']}: [bold]{result['status']}[/] ({run})",
        highlight=False,
    )
    columns = ("place", "name", "exec", "function", "params", "status", "pid", "attempt")
    table = _table(*columns, "exit_code", "started_at", "ended_at")
    for task in result["tasks"]:
        cells = [_cell(task[c]) for c in columns]
        table.add_row(
            *cells, _cell(task["exit_code"]), _time(task["started_at"]), _time(task["ended_at"])
        )
    console.print(table, highlight=False)


def list_table(result: dict[str, Any]) -> None:
    console = _console()
    table = _table("project", "workflow", "status", "run")
    for project in result["projects"]:
        name = project["name"] + (" *" if project["current"] else "")
        if not project["workflows"]:
            table.add_row(name, "-", "-", "-")
        for wf in project["workflows"]:
            table.add_row(name, wf["name"], wf["status"], _cell(wf["run_id"]))
    console.print(table, highlight=False)
    console.print("* current project", style="dim", highlight=False)


def alarms_table(result: dict[str, Any]) -> None:
    console = _console()
    columns = ("id", "state", "severity", "project", "source", "kind", "count")
    table = _table(*columns, "first_seen", "last_seen", "message")
    for alarm in result["alarms"]:
        cells = [_cell(alarm[c]) for c in columns]
        table.add_row(
            *cells, _time(alarm["first_seen"]), _time(alarm["last_seen"]), alarm["message"]
        )
    console.print(table, highlight=False)
