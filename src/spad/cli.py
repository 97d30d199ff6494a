"""``spa_ctl`` (alias ``spa_conn``): drive a spad server.

Exit codes: 0 done, 1 the server refused (its message on stderr), 2 usage error, 3 server
unreachable. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from spad.alarmcmd import alarm, alarms, signal
from spad.cli_context import EXIT_REFUSED, EXIT_USAGE, Context, fail, pass_ctx, show
from spad.client import Client
from spad.filecmd import file

FOLLOW_INTERVAL = 0.2


project_option = click.option(
    "-p", "--project", envvar="SPA_PROJECT", help="project (default: the current one)"
)
workflow_option = click.option("-w", "--workflow", required=True, help="workflow")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="SPA_URL", help="server URL (default http://127.0.0.1:7070)")
@click.option("--token", envvar="SPA_TOKEN", help="API token (default: $SPA_HOME/token)")
@click.option("--cacert", envvar="SPA_CACERT", help="CA file to trust for an https:// URL")
@click.option("--json", "as_json", is_flag=True, help="print the raw JSON result")
@click.pass_context
def cli(
    click_ctx: click.Context,
    url: str | None,
    token: str | None,
    cacert: str | None,
    as_json: bool,
) -> None:
    """Drive a spad server: define, run, stop and watch workflows."""
    click_ctx.obj = Context(Client(url, token, cacert=cacert), as_json)


def _tree(json_text: str | None, file: str | None) -> Any:
    if (json_text is None) == (file is None):
        raise click.UsageError("give the definition tree with -j JSON or -f FILE")
    try:
        text = Path(file).read_text() if file else json_text
        return json.loads(text or "")
    except OSError as exc:
        raise click.UsageError(f"cannot read {file}: {exc.strerror}") from None
    except ValueError as exc:
        raise click.UsageError(f"the definition tree is not valid JSON: {exc}") from None


def _summary(verb: str, result: dict[str, Any]) -> str:
    parts = []
    for wf in result.get("workflows", []):
        tasks = ", ".join(wf["tasks"])
        whole = " (whole)" if wf.get("whole") else ""
        parts.append(f"  {wf['name']}{whole}" + (f": {tasks}" if tasks else ""))
    return f"{verb} in project {result['project']}" + ("\n" + "\n".join(parts) if parts else "")


tree_options = [
    click.option("-j", "--json-tree", "json_text", help="definition tree as JSON text"),
    click.option(
        "-f",
        "--file",
        "file",
        type=click.Path(dir_okay=False),
        help="definition tree in a JSON file",
    ),
]


def with_tree(function: Any) -> Any:
    for option in reversed(tree_options):
        function = option(function)
    return function


@cli.command(name="select_project")
@click.argument("project")
@pass_ctx
def select_project(ctx: Context, project: str) -> None:
    """Make PROJECT the current project."""
    result = ctx.call("select_project", project=project)
    show(ctx, result, f"current project: {result['project']}")


@cli.command()
@with_tree
@pass_ctx
def create(ctx: Context, json_text: str | None, file: str | None) -> None:
    """Add projects, workflows and tasks (merging into what exists)."""
    result = ctx.call("create", **_tree(json_text, file))
    show(ctx, result, _summary("created", result))


@cli.command()
@with_tree
@pass_ctx
def update(ctx: Context, json_text: str | None, file: str | None) -> None:
    """Replace the workflows and tasks given (dump's output can be edited and fed back)."""
    result = ctx.call("update", **_tree(json_text, file))
    show(ctx, result, _summary("replaced", result))


@cli.command()
@with_tree
@project_option
@click.option("-w", "--workflow", help="workflow to delete (whole, unless -t)")
@click.option("-t", "--task", help="task to delete")
@pass_ctx
def delete(
    ctx: Context,
    json_text: str | None,
    file: str | None,
    project: str | None,
    workflow: str | None,
    task: str | None,
) -> None:
    """Delete workflows or tasks: a tree (-j/-f) or -w WORKFLOW [-t TASK]."""
    if json_text is None and file is None:
        if workflow is None:
            raise click.UsageError("give -w WORKFLOW [-t TASK], or a tree with -j or -f")
        result = ctx.call("delete", project=project, workflow=workflow, task=task)
    else:
        result = ctx.call("delete", **_tree(json_text, file))
    show(ctx, result, _summary("deleted", result))


@cli.command()
@project_option
@workflow_option
@click.option("-t", "--task", help="run only this task")
@click.option("--from", "from_task", help="start at this task")
@pass_ctx
def run(
    ctx: Context, project: str | None, workflow: str, task: str | None, from_task: str | None
) -> None:
    """Start a workflow (a new run)."""
    if task and from_task:
        raise click.UsageError("give -t TASK or --from TASK, not both")
    params: dict[str, Any] = {"project": project, "workflow": workflow, "task": task}
    if from_task:
        params["from"] = from_task
    result = ctx.call("run", **params)
    show(ctx, result, f"started {workflow}: run {result['run_id']}")


@cli.command()
@project_option
@workflow_option
@click.option("--wait", is_flag=True, help="return when the workflow has stopped")
@click.option("--force", is_flag=True, help="no grace: SIGKILL at once")
@click.option(
    "--timeout",
    type=float,
    default=600,
    show_default=True,
    help="with --wait: give up after this many seconds",
)
@pass_ctx
def stop(
    ctx: Context, project: str | None, workflow: str, wait: bool, force: bool, timeout: float
) -> None:
    """Stop a running workflow: stop signal, then SIGKILL after each task's stop_timeout."""
    result = ctx.call("stop", project=project, workflow=workflow, force=force or None)
    if wait:
        deadline = time.monotonic() + timeout
        while True:
            state = ctx.call("status", project=result["project"], workflow=workflow)
            if state["run_id"] != result["run_id"] or state["status"] not in (
                "running",
                "stopping",
            ):
                result = state
                break
            if time.monotonic() > deadline:
                fail(f"{workflow} is still {state['status']} after {timeout:g} s", EXIT_REFUSED)
            time.sleep(FOLLOW_INTERVAL)
    show(ctx, result, f"{workflow}: {result['status']}")


@cli.command()
@project_option
@workflow_option
@click.option("-t", "--task", help="only this task")
@pass_ctx
def status(ctx: Context, project: str | None, workflow: str, task: str | None) -> None:
    """A workflow's status and one row per task."""
    result = ctx.call("status", project=project, workflow=workflow, task=task)
    if ctx.as_json:
        show(ctx, result)
        return
    from spad.tables import status_table

    status_table(result)


@cli.command()
@project_option
@click.option("-w", "--workflow", help="only this workflow")
@click.option("-t", "--task", help="only this task")
@pass_ctx
def dump(ctx: Context, project: str | None, workflow: str | None, task: str | None) -> None:
    """The definition tree as JSON, every field filled in (feed it back with update -f)."""
    show(ctx, ctx.call("dump", project=project, workflow=workflow, task=task))


@cli.command(name="set_status")
@click.option("-p", "--project", envvar="SPA_PROJECT", help="project")
@click.option("-w", "--workflow", envvar="SPA_WORKFLOW", required=True, help="workflow")
@click.option("-t", "--task", envvar="SPA_TASK", required=True, help="task")
@click.option(
    "-s",
    "--status",
    "new_status",
    required=True,
    type=click.Choice(["waiting", "running"]),
    help="the new status",
)
@pass_ctx
def set_status(
    ctx: Context, project: str | None, workflow: str, task: str, new_status: str
) -> None:
    """Set a running task's status to waiting or back to running (inside a task, -p -w -t
    default to its own)."""
    result = ctx.call(
        "set_status", project=project, workflow=workflow, task=task, status=new_status
    )
    show(ctx, result, f"{task}: {result['status']}")


@cli.command(name="list")
@click.option("-p", "--project", help="only this project")
@pass_ctx
def list_(ctx: Context, project: str | None) -> None:
    """Projects, their workflows and each workflow's status."""
    result = ctx.call("list", project=project)
    if ctx.as_json:
        show(ctx, result)
        return
    from spad.tables import list_table

    list_table(result)


@cli.command()
@project_option
@workflow_option
@click.option("-t", "--task", required=True, help="task")
@click.option("-r", "--run-id", type=int, help="run (default: the latest)")
@click.option("-a", "--attempt", type=int, help="attempt (default: the latest)")
@click.option("-n", "--lines", type=click.IntRange(min=0), help="only the last LINES lines")
@click.option("-f", "--follow", is_flag=True, help="keep printing as the task writes")
@pass_ctx
def logs(
    ctx: Context,
    project: str | None,
    workflow: str,
    task: str,
    run_id: int | None,
    attempt: int | None,
    lines: int | None,
    follow: bool,
) -> None:
    """A task's output (stdout and stderr, in order)."""
    params = {
        "project": project,
        "workflow": workflow,
        "task": task,
        "run_id": run_id,
        "attempt": attempt,
    }
    if not follow:
        click.echo(ctx.call("logs", tail=lines, **params), nl=False)
        return
    offset = 0
    if lines is not None:
        chunk = ctx.call("logs", tail=lines, offset=0, **params)
        click.echo(chunk["text"], nl=False)
        offset = chunk["offset"]
    while True:
        chunk = ctx.call("logs", offset=offset, **params)
        click.echo(chunk["text"], nl=False)
        if chunk["offset"] == offset:
            if chunk["ended"]:
                return
            time.sleep(FOLLOW_INTERVAL)
        offset = chunk["offset"]


@cli.command(name="audit")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="how many of the latest entries",
)
@pass_ctx
def audit_(ctx: Context, lines: int) -> None:
    """The audit trail: every call that changed something, who made it, how it ended."""
    result = ctx.call("audit", limit=lines)
    if ctx.as_json:
        show(ctx, result)
        return
    for entry in result["entries"]:
        click.echo(
            f"{entry['at']}  {entry['client']:<15} {entry['method']:<14} "
            f"{entry['outcome']}  {entry['detail'] or ''}".rstrip()
        )


for command in (file, signal, alarms, alarm):
    cli.add_command(command)


def main() -> None:
    try:
        cli(standalone_mode=False, prog_name=Path(sys.argv[0]).name)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        fail("aborted", EXIT_USAGE)
    except click.ClickException as exc:
        click.echo(f"spa_ctl: {exc.format_message()}", err=True)
        if isinstance(exc, click.UsageError):
            click.echo("  (spa_ctl --help lists the commands)", err=True)
        sys.exit(EXIT_USAGE)
