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

from spad.cli.alarms import alarm, alarms, signal
from spad.cli.client import Client
from spad.cli.context import (
    EXIT_REFUSED,
    EXIT_USAGE,
    Context,
    add_global_options,
    fail,
    finite,
    pass_ctx,
    show,
)
from spad.cli.events import events
from spad.cli.files import file
from spad.cli.tables import printable, printable_text
from spad.cli.watch import watch

FOLLOW_INTERVAL = 0.2

COMPLETION = """Shell completion (workflow names come from the server when it answers): add
to ~/.bashrc  eval "$(_SPA_CTL_COMPLETE=bash_source spa_ctl)"  (zsh: zsh_source in ~/.zshrc;
fish: _SPA_CTL_COMPLETE=fish_source spa_ctl | source).

Options --json, --url, --token, --cacert and --utc may stand anywhere on the line."""


def complete_workflow(
    click_ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[str]:
    """Workflow names of the project given (or the current one), asked of the server; none
    when it does not answer (completion must never fail)."""
    try:
        project = click_ctx.params.get("project")
        result = Client().call("list", **({"project": project} if project else {}))
    except Exception:
        return []
    names = {
        wf["name"]
        for entry in result["projects"]
        if project or entry["current"]
        for wf in entry["workflows"]
    }
    return sorted(n for n in names if n.startswith(incomplete))


project_option = click.option(
    "-p", "--project", envvar="SPA_PROJECT", help="project (default: the current one)"
)
workflow_option = click.option(
    "-w", "--workflow", help="workflow (or give it first)", shell_complete=complete_workflow
)
workflow_argument = click.argument(
    "workflow_name", metavar="[WORKFLOW]", required=False, shell_complete=complete_workflow
)
wide_option = click.option("--wide", is_flag=True, help="every column, however wide")


def _workflow(positional: str | None, option: str | None, required: bool = True) -> str:
    """The workflow, named first (``run wf1``) or with ``-w`` (``run -w wf1``)."""
    if positional and option and positional != option:
        raise click.UsageError(f"two workflows given ({positional}, -w {option}): give one")
    name = positional or option
    if name is None and required:
        raise click.UsageError("give the workflow: first (e.g. 'run wf1') or with -w WORKFLOW")
    return name or ""


def _version(click_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or click_ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        click.echo(f"spa_ctl (spad) {version('spad')}")
    except PackageNotFoundError:
        click.echo("spa_ctl (spad) version unknown: not installed as a package")
    click_ctx.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=COMPLETION)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="print the version and exit",
)
@click.pass_context
def cli(click_ctx: click.Context) -> None:
    """Drive a spad server: define, run, stop and watch workflows."""
    click_ctx.ensure_object(Context)


def _tree(json_text: str | None, file: str | None, command: str) -> dict[str, Any]:
    """The definition tree given with -j or -f; a file may also hold a whole JSON-RPC request
    for ``command`` (the examples' ``command_*.json``), whose params are the tree."""
    if (json_text is None) == (file is None):
        raise click.UsageError("give the definition tree with -j JSON or -f FILE")
    where = file or "the -j text"
    try:
        text = Path(file).read_text() if file else json_text
        tree = json.loads(text or "")
    except OSError as exc:
        raise click.UsageError(f"cannot read {file}: {exc.strerror}") from None
    except ValueError as exc:
        raise click.UsageError(f"{where} is not valid JSON: {exc}") from None
    if isinstance(tree, dict) and "jsonrpc" in tree:
        method = tree.get("method")
        if method != command:
            raise click.UsageError(
                f"{where} is a JSON-RPC request for {method!r}, not {command!r}: "
                f"give it to 'spa_ctl {method}' (or curl), or give a definition tree"
                if isinstance(method, str)
                else f"{where} is a JSON-RPC request without a method: give a definition tree"
            )
        tree = tree.get("params")
    if not isinstance(tree, dict):
        raise click.UsageError(
            f"{where} holds no definition tree: give an object such as "
            '{"project": {"name": "pr1", "workflows": [...]}} (examples/definition.json)'
        )
    return tree


def _summary(verb: str, result: dict[str, Any]) -> str:
    parts = []
    for wf in result.get("workflows", []):
        tasks = ", ".join(printable(t) for t in wf["tasks"])
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
        help="a JSON file: the definition tree, or a JSON-RPC request for this command",
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
    result = ctx.call("create", **_tree(json_text, file, "create"))
    for warning in result.get("warnings", []):
        click.echo(f"spa_ctl: warning: {warning}", err=True)
    show(ctx, result, _summary("created", result))


@cli.command()
@with_tree
@pass_ctx
def update(ctx: Context, json_text: str | None, file: str | None) -> None:
    """Replace the workflows and tasks given (dump's output can be edited and fed back)."""
    result = ctx.call("update", **_tree(json_text, file, "update"))
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
        result = ctx.call("delete", **_tree(json_text, file, "delete"))
    show(ctx, result, _summary("deleted", result))


@cli.command()
@workflow_argument
@project_option
@workflow_option
@click.option("-t", "--task", help="run only this task")
@click.option("--from", "from_task", help="start at this task")
@pass_ctx
def run(
    ctx: Context,
    workflow_name: str | None,
    project: str | None,
    workflow: str | None,
    task: str | None,
    from_task: str | None,
) -> None:
    """Start a workflow (a new run): spa_ctl run wf1, or run -w wf1."""
    name = _workflow(workflow_name, workflow)
    if task and from_task:
        raise click.UsageError("give -t TASK or --from TASK, not both")
    params: dict[str, Any] = {"project": project, "workflow": name, "task": task}
    if from_task:
        params["from"] = from_task
    result = ctx.call("run", **params)
    show(ctx, result, f"started {name}: run {result['run_id']}")


def _wait_stopped(ctx: Context, project: str, workflow: str, run_id: int, timeout: float) -> Any:
    """Poll until run ``run_id`` of the workflow is no longer running or stopping."""
    deadline = time.monotonic() + timeout
    while True:
        state = ctx.call("status", project=project, workflow=workflow)
        if state["run_id"] != run_id or state["status"] not in ("running", "stopping"):
            return state
        if time.monotonic() > deadline:
            fail(f"{workflow} is still {state['status']} after {timeout:g} s", EXIT_REFUSED)
        time.sleep(FOLLOW_INTERVAL)


timeout_option = click.option(
    "--timeout",
    type=float,
    callback=finite,
    default=600,
    show_default=True,
    help="give up waiting after this many seconds",
)


@cli.command()
@workflow_argument
@project_option
@workflow_option
@click.option("--wait", is_flag=True, help="return when the workflow has stopped")
@click.option("--force", is_flag=True, help="no grace: SIGKILL at once")
@timeout_option
@pass_ctx
def stop(
    ctx: Context,
    workflow_name: str | None,
    project: str | None,
    workflow: str | None,
    wait: bool,
    force: bool,
    timeout: float,
) -> None:
    """Stop a running workflow: stop signal, then SIGKILL after each task's stop_timeout."""
    name = _workflow(workflow_name, workflow)
    result = ctx.call("stop", project=project, workflow=name, force=force or None)
    if wait:
        result = _wait_stopped(ctx, result["project"], name, result["run_id"], timeout)
    show(ctx, result, f"{name}: {result['status']}")


@cli.command()
@workflow_argument
@project_option
@workflow_option
@timeout_option
@pass_ctx
def restart(
    ctx: Context,
    workflow_name: str | None,
    project: str | None,
    workflow: str | None,
    timeout: float,
) -> None:
    """Stop a workflow gracefully, wait until it ended, and run it again (just run it when it
    is not running)."""
    name = _workflow(workflow_name, workflow)
    result = ctx.call("restart", project=project, workflow=name)
    run_id = result["run_id"]
    if run_id is None:
        run_id = _wait_started_again(
            ctx, result["project"], name, result["stopping_run_id"], timeout
        )
        result = {**result, "run_id": run_id}
    show(ctx, result, f"restarted {name}: run {run_id}")


#: After the stopped run ended, how long the server may take to see its runner gone and start
#: the new run.
RESTART_GRACE = 10.0


def _wait_started_again(ctx: Context, project: str, workflow: str, old: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    ended_seen: float | None = None
    while True:
        state = ctx.call("status", project=project, workflow=workflow)
        if state["run_id"] != old:
            return int(state["run_id"])
        now = time.monotonic()
        if state["status"] not in ("running", "stopping"):
            ended_seen = ended_seen or now
            if now - ended_seen > RESTART_GRACE:
                fail(f"{workflow} ended {state['status']} but did not start again", EXIT_REFUSED)
        if now > deadline:
            fail(f"{workflow} is still {state['status']} after {timeout:g} s", EXIT_REFUSED)
        time.sleep(FOLLOW_INTERVAL)


@cli.command()
@workflow_argument
@project_option
@workflow_option
@click.option("-t", "--task", help="only this task")
@click.option("-r", "--run-id", type=int, help="a past run (see history)")
@wide_option
@pass_ctx
def status(
    ctx: Context,
    workflow_name: str | None,
    project: str | None,
    workflow: str | None,
    task: str | None,
    run_id: int | None,
    wide: bool,
) -> None:
    """A workflow's status and one row per task; without a workflow, one line per workflow of
    the project."""
    name = _workflow(workflow_name, workflow, required=False)
    from spad.cli import tables

    if not name:
        if task or run_id:
            raise click.UsageError("-t and -r need a workflow")
        result = ctx.call("list", project=project or _current(ctx))
        if ctx.as_json:
            show(ctx, result)
            return
        tables.workflows_table(result, result["projects"][0]["name"], wide, ctx.utc)
        return
    # Memory is read from /proc for each live task: only for --wide, which shows it.
    result = ctx.call(
        "status", project=project, workflow=name, task=task, run_id=run_id, memory=wide
    )
    if ctx.as_json:
        show(ctx, result)
        return
    tables.status_table(result, wide, ctx.utc)


def _current(ctx: Context) -> str:
    for entry in ctx.call("list")["projects"]:
        if entry["current"]:
            return str(entry["name"])
    fail("no current project: give one (-p PROJECT) or create one first", EXIT_REFUSED)


@cli.command()
@workflow_argument
@project_option
@workflow_option
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="how many of the latest runs",
)
@wide_option
@pass_ctx
def history(
    ctx: Context,
    workflow_name: str | None,
    project: str | None,
    workflow: str | None,
    limit: int,
    wide: bool,
) -> None:
    """The runs of a workflow, newest first, and how each ended (finished, stopped, failed,
    crashed = resumed as a newer run)."""
    name = _workflow(workflow_name, workflow)
    result = ctx.call("history", project=project, workflow=name, limit=limit)
    if ctx.as_json:
        show(ctx, result)
        return
    from spad.cli.tables import history_table

    history_table(result, wide, ctx.utc)


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


@cli.command()
@click.option("-p", "--project", envvar="SPA_PROJECT", help="project")
@click.option("-w", "--workflow", envvar="SPA_WORKFLOW", required=True, help="workflow")
@click.option("-t", "--task", envvar="SPA_TASK", required=True, help="task")
@pass_ctx
def heartbeat(ctx: Context, project: str | None, workflow: str, task: str) -> None:
    """Tell spad a running task is alive, restarting its idle_timeout (inside a task, -p -w -t
    default to its own)."""
    result = ctx.call("heartbeat", project=project, workflow=workflow, task=task)
    show(ctx, result, f"{task}: alive at {result['at']}")


@cli.command(name="list")
@click.option("-p", "--project", help="only this project")
@wide_option
@pass_ctx
def list_(ctx: Context, project: str | None, wide: bool) -> None:
    """Projects, their workflows and each workflow's status."""
    result = ctx.call("list", project=project)
    if ctx.as_json:
        show(ctx, result)
        return
    from spad.cli.tables import workflows_table

    workflows_table(result, None, wide, ctx.utc)


def echo_log(text: str) -> None:
    """A task's output as text: a task's ESC or title sequence must not drive the terminal
    (``file get LOG -`` gives the bytes as they are)."""
    click.echo(printable_text(text), nl=False)


@cli.command()
@workflow_argument
@project_option
@workflow_option
@click.option("-t", "--task", help="only this task (default: every task, lines prefixed)")
@click.option("-r", "--run-id", type=int, help="run (default: the latest)")
@click.option("-a", "--attempt", type=int, help="attempt, with -t (default: the latest)")
@click.option("-n", "--lines", type=click.IntRange(min=0), help="only the last LINES lines")
@click.option("-f", "--follow", is_flag=True, help="keep printing as the tasks write")
@pass_ctx
def logs(
    ctx: Context,
    workflow_name: str | None,
    project: str | None,
    workflow: str | None,
    task: str | None,
    run_id: int | None,
    attempt: int | None,
    lines: int | None,
    follow: bool,
) -> None:
    """A task's output (stdout and stderr, in order); without -t every task's, each line
    prefixed by its task's name."""
    name = _workflow(workflow_name, workflow)
    if attempt is not None and task is None:
        raise click.UsageError("-a ATTEMPT needs -t TASK")
    params = {"project": project, "workflow": name, "run_id": run_id}
    if task is None:
        if follow:
            from spad.cli.follow import follow_all

            follow_all(ctx, params, lines)
        else:
            echo_log(ctx.call("logs", tail=lines, **params))
        return
    params.update(task=task, attempt=attempt)
    if not follow:
        echo_log(ctx.call("logs", tail=lines, **params))
        return
    offset = 0
    if lines is not None:
        chunk = ctx.call("logs", tail=lines, offset=0, **params)
        echo_log(chunk["text"])
        offset = chunk["offset"]
    while True:
        chunk = ctx.call("logs", offset=offset, **params)
        echo_log(chunk["text"])
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
@wide_option
@pass_ctx
def audit_(ctx: Context, lines: int, wide: bool) -> None:
    """The audit trail: every call that changed something, who made it, how it ended."""
    result = ctx.call("audit", limit=lines)
    if ctx.as_json:
        show(ctx, result)
        return
    from spad.cli.tables import audit_table

    audit_table(result, wide, ctx.utc)


for command in (file, signal, alarms, alarm, events, watch):
    cli.add_command(command)
add_global_options(cli)


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
    except BrokenPipeError:
        sys.exit(0)  # the reader went away (spa_ctl logs | head): nothing more to say
    except Exception as exc:  # never a traceback to a person: say what broke, where to report
        fail(f"unexpected error ({type(exc).__name__}: {exc}); please report it", EXIT_USAGE)
