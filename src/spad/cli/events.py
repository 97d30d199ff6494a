"""``spa_ctl events``: transitions as lines, as they happen (``--json``: one JSON object a line)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import click

from spad.cli import livefeed
from spad.cli.client import ServerError, ServerEvent, Unreachable
from spad.cli.context import EXIT_REFUSED, EXIT_UNREACHABLE, Context, fail, pass_ctx


@click.command()
@click.option("-p", "--project", help="only this project's events")
@click.option("-w", "--workflow", help="only this workflow's events")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(0, 10_000),
    default=0,
    help="first print the last LINES stored events",
)
@click.option("--since", type=click.IntRange(min=0), help="first print the stored events after id")
@click.option("--no-follow", is_flag=True, help="print the stored events and end")
@pass_ctx
def events(
    ctx: Context,
    project: str | None,
    workflow: str | None,
    lines: int,
    since: int | None,
    no_follow: bool,
) -> None:
    """Every task, workflow and alarm transition, one a line, as it happens (Ctrl-C ends).
    spad keeps the newest 10,000: --since ID or -n LINES prints those first."""
    last = None
    if since is not None or lines:
        stored = _stored(ctx, project, workflow, lines, since)
        for event in stored:
            _print(ctx, event)
        last = stored[-1].id if stored else ctx.call("events", limit=1)["last_id"]
    if no_follow:
        return
    for message in stream(ctx, last):
        if message.comment is None and livefeed.matches(message, project, workflow):
            _print(ctx, message)


def stream(ctx: Context, last: int | None) -> Iterator[ServerEvent]:
    """The followed stream; a refusal or an unreachable server ends the command with its
    exit code, Ctrl-C ends it quietly."""
    try:
        yield from livefeed.follow(ctx.client, last)
    except ServerError as exc:
        fail(exc.message, EXIT_REFUSED)
    except Unreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    except KeyboardInterrupt:
        return


def _stored(
    ctx: Context, project: str | None, workflow: str | None, lines: int, since: int | None
) -> list[ServerEvent]:
    params = {"project": project, "workflow": workflow}
    if since is not None:
        found = ctx.call("events", after=since, limit=10_000, **params)["events"]
    else:
        found = ctx.call("events", limit=lines, newest_first=True, **params)["events"][::-1]
    return [ServerEvent(e.pop("id"), e.pop("kind"), e) for e in found]


def _print(ctx: Context, event: ServerEvent) -> None:
    if ctx.as_json:
        text = json.dumps({"id": event.id, "kind": event.kind, **event.data}, ensure_ascii=False)
    else:
        text = livefeed.line(event, ctx.utc)
    click.echo(text)
    sys.stdout.flush()
