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


def status_table(result: dict[str, Any]) -> None:
    console = Console(soft_wrap=True)
    run = f"run {result['run_id']}" if result["run_id"] is not None else "never run"
    console.print(
        f"{result['project']}/{result['workflow']}: [bold]{result['status']}[/] ({run})",
        highlight=False,
    )
    table = Table(box=None, pad_edge=False)
    columns = (
        "place",
        "name",
        "exec",
        "function",
        "params",
        "status",
        "pid",
        "attempt",
        "exit_code",
        "started_at",
        "ended_at",
    )
    for column in columns:
        table.add_column(column.replace("_", " "))
    for task in result["tasks"]:
        table.add_row(*(_cell(task[c]) for c in columns))
    console.print(table, highlight=False)


def list_table(result: dict[str, Any]) -> None:
    console = Console(soft_wrap=True)
    table = Table(box=None, pad_edge=False)
    for column in ("project", "workflow", "status", "run"):
        table.add_column(column)
    for project in result["projects"]:
        name = project["name"] + (" *" if project["current"] else "")
        if not project["workflows"]:
            table.add_row(name, "-", "-", "-")
        for wf in project["workflows"]:
            table.add_row(name, wf["name"], wf["status"], _cell(wf["run_id"]))
    console.print(table, highlight=False)
    console.print("* current project", style="dim", highlight=False)
