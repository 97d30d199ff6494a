"""Tables for spa_ctl that fit the terminal, and text from tasks shown as text.

Plain text, no markup language: a param or an alarm message holding ``[/bold]`` is printed as
it is, and control characters (ESC, NUL, a newline inside a file name) are shown escaped, so
nothing a task writes can drive the terminal or forge a line. At the terminal's width a name or
a status is never cut: whole columns drop from the right (the first ones are kept), and
``--wide`` shows them all.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spad.numerals import ascii_int

GAP = "  "


def printable(value: str) -> str:
    """``value`` with every non-printable character escaped (``\\x1b``, ``\\n``, ``\\x00``)."""
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else _escaped(c) for c in value)


def _escaped(char: str) -> str:
    # A byte of a file name that is not UTF-8 reaches us as a surrogate (os.fsdecode): shown
    # as that byte, which bash's $'...' gives back as it was.
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return char.encode("unicode_escape").decode()


def printable_text(text: str) -> str:
    """A task's output shown as text: its lines and tabs kept, every other control character
    escaped (a carriage return too, which could overwrite a line's task prefix)."""
    if text.isprintable():
        return text
    return "\n".join("\t".join(map(printable, line.split("\t"))) for line in text.split("\n"))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    return printable(str(value))


def params(values: list[str]) -> str:
    """A task's params as a shell would read them: ``'report ready'`` is one, ``report
    ready`` two."""
    return printable(shlex.join(values)) if values else "-"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def local_time(value: str | None, utc: bool) -> str:
    """``2026-11-28T04:08:31.123Z`` as ``2026-11-28 05:08:31 CET`` (``--utc``: ``... UTC``)."""
    if not value:
        return "-"
    moment = parse_time(value)
    shown = moment.astimezone(UTC) if utc else moment.astimezone()
    return shown.strftime("%Y-%m-%d %H:%M:%S %Z")


def duration(seconds: float) -> str:
    """``75`` as ``1m15s``: how long, at a glance."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def size(value: int | None) -> str:
    """Bytes as ``12.3M``: a task's resident memory."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("", "K", "M", "G"):
        if amount < 1024:
            return f"{amount:.0f}" if unit == "" else f"{amount:.1f}{unit}"
        amount /= 1024
    return f"{amount:.1f}T"


def since(value: str | None, now: float | None = None) -> str:
    """How long ago ``value`` was."""
    if not value:
        return "-"
    return duration((now or time.time()) - parse_time(value).timestamp())


def until(value: str | None, now: float | None = None) -> str:
    """When ``value`` comes: ``in 12s`` (``now`` once it passed)."""
    if not value:
        return "-"
    left = parse_time(value).timestamp() - (now or time.time())
    return f"in {duration(left)}" if left >= 1 else "now"


def width() -> int | None:
    """Columns to fit: ``COLUMNS``, else the terminal's; None (no limit) in a pipe or file."""
    given = ascii_int(os.environ.get("COLUMNS", ""))  # "²" too is ignored by terminals
    if given is not None and given > 0:
        return given
    if sys.stdout.isatty():
        return os.get_terminal_size(sys.stdout.fileno()).columns
    return None


@dataclass(frozen=True)
class Column:
    title: str
    keep: bool = False  # never dropped: names and statuses
    right: bool = False  # numbers


def render(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], limit: int | None, wide: bool
) -> str:
    """The table as lines, its columns dropped from the right (all but ``keep`` ones) until it
    fits ``limit`` characters; every column whole with ``wide`` or without a limit."""
    widths = [max([len(c.title), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    shown = list(range(len(columns)))

    def total() -> int:
        return sum(widths[i] for i in shown) + len(GAP) * (len(shown) - 1)

    if limit is not None and not wide:
        for i in reversed(range(len(columns))):
            if total() <= limit:
                break
            if not columns[i].keep:
                shown.remove(i)
    lines = []
    for values in [[c.title.upper() for c in columns], *rows]:
        parts = [
            values[i].rjust(widths[i]) if columns[i].right else values[i].ljust(widths[i])
            for i in shown
        ]
        lines.append(GAP.join(parts).rstrip())
    hidden = len(columns) - len(shown)
    if hidden:
        lines.append(f"({hidden} more column{'s' if hidden > 1 else ''}: --wide shows them)")
    return "\n".join(lines)


def print_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], wide: bool) -> None:
    print(render(columns, rows, width(), wide))


def status_table(result: dict[str, Any], wide: bool = False, utc: bool = False) -> None:
    run = result["run_id"]
    head = f"{cell(result['project'])}/{cell(result['workflow'])}: {cell(result['status'])}"
    if run is None:
        print(head + " (never run)")
    else:
        resumed = result.get("resumed_from")
        print(head + f" (run {run}" + (f", resumed from run {resumed})" if resumed else ")"))
        times = f"started {local_time(result.get('started_at'), utc)}"
        if result.get("ended_at"):
            times += f", ended {local_time(result['ended_at'], utc)}"
        print(times)  # a line of its own: two times with their zone fit 80 columns
    columns = [
        Column("place", right=True),
        Column("name", keep=True),
        Column("status", keep=True),
        Column("for"),
        Column("restarts", right=True),
        Column("next"),
        Column("exit", right=True),
        Column("function"),
        Column("params"),
        Column("pid", right=True),
        Column("exec"),
        Column("started"),
        Column("ended"),
        Column("memory", right=True),
    ]
    rows = [
        [
            cell(task["place"]),
            cell(task["name"]),
            cell(task["status"]),
            since(task.get("since")),
            cell(task.get("restarts", 0)),
            until(task.get("next_attempt_at")) if task["status"] == "rerun" else "-",
            cell(task["exit_code"]),
            cell(task["function"]),
            params(task["params"]),
            where(task),
            cell(task["exec"]),
            local_time(task["started_at"], utc),
            local_time(task["ended_at"], utc),
            size(task.get("memory")),
        ]
        for task in result["tasks"]
    ]
    print_table(columns, rows, wide)


def where(task: dict[str, Any]) -> str:
    """The pid of a local task; ``job N`` for a Slurm job, in the same column."""
    if task.get("job") is not None:
        return f"job {cell(task['job'])}"
    return cell(task["pid"])


def workflows_table(result: dict[str, Any], project: str | None, wide: bool, utc: bool) -> None:
    """``list`` (every project) or ``status`` without a workflow (one project)."""
    columns = [
        Column("project", keep=project is None),
        Column("workflow", keep=True),
        Column("status", keep=True),
        Column("for"),
        Column("restarts", right=True),
        Column("run", right=True),
        Column("started"),
    ]
    rows = []
    for entry in result["projects"]:
        name = cell(entry["name"]) + (" *" if entry["current"] else "")
        if not entry["workflows"]:
            rows.append([name, "-", "-", "-", "-", "-", "-"])
        for wf in entry["workflows"]:
            rows.append(
                [
                    name,
                    cell(wf["name"]),
                    cell(wf["status"]),
                    since(wf.get("ended_at") or wf.get("started_at")),
                    cell(wf.get("restarts", 0)),
                    cell(wf["run_id"]),
                    local_time(wf.get("started_at"), utc),
                ]
            )
    if project is not None:
        columns, rows = columns[1:], [row[1:] for row in rows]
    print_table(columns, rows, wide)
    if project is None:
        print("* current project")


def history_table(result: dict[str, Any], wide: bool, utc: bool) -> None:
    columns = [
        Column("run", right=True, keep=True),
        Column("status", keep=True),
        Column("ended_by", keep=True),
        Column("started"),
        Column("ended"),
        Column("resumed_from", right=True),
    ]
    rows = [
        [
            cell(run["run_id"]),
            cell(run["status"]),
            cell(run["ended_by"] or "running"),
            local_time(run["started_at"], utc),
            local_time(run["ended_at"], utc),
            cell(run["resumed_from"]),
        ]
        for run in result["runs"]
    ]
    print_table(columns, rows, wide)


def alarms_table(result: dict[str, Any], wide: bool = False, utc: bool = False) -> None:
    columns = [
        Column("id", right=True, keep=True),
        Column("state", keep=True),
        Column("severity", keep=True),
        Column("kind", keep=True),
        Column("message"),
        Column("count", right=True),
        Column("project"),
        Column("source"),
        Column("first_seen"),
        Column("last_seen"),
    ]
    rows = [
        [
            cell(alarm["id"]),
            cell(alarm["state"]),
            cell(alarm["severity"]),
            cell(alarm["kind"]),
            cell(alarm["message"]),
            cell(alarm["count"]),
            cell(alarm["project"]),
            cell(alarm["source"]),
            local_time(alarm["first_seen"], utc),
            local_time(alarm["last_seen"], utc),
        ]
        for alarm in result["alarms"]
    ]
    print_table(columns, rows, wide)


def audit_table(result: dict[str, Any], wide: bool = False, utc: bool = False) -> None:
    columns = [
        Column("at", keep=True),
        Column("client"),
        Column("method", keep=True),
        Column("outcome", keep=True),
        Column("detail"),
    ]
    rows = [
        [
            local_time(entry["at"], utc),
            cell(entry["client"]),
            cell(entry["method"]),
            cell(entry["outcome"]),
            cell(entry["detail"] or ""),
        ]
        for entry in result["entries"]
    ]
    print_table(columns, rows, wide)
