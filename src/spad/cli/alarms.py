"""``spa_ctl signal raise``, ``spa_ctl alarms``, ``spa_ctl alarm ack|clear``."""

from __future__ import annotations

import click

from spad.alarms.levels import ACKNOWLEDGED, ALARM_SEVERITIES, OPEN, SEVERITIES
from spad.cli.context import Context, finite, pass_ctx, show


@click.group()
def signal() -> None:
    """Raise anomaly signals (a task has the SPA_* environment to call this)."""


@signal.command(name="raise")
@click.option("-p", "--project", envvar="SPA_PROJECT", help="project (default: the current one)")
@click.option("--source", required=True, help="what raises it, e.g. the analysis")
@click.option("--kind", required=True, help="what kind of anomaly, e.g. drift")
@click.option(
    "--severity",
    required=True,
    type=click.Choice(SEVERITIES),
    help="clear ends the alarm of this source and kind",
)
@click.option("--message", default="", help="what a person should read")
@click.option("--value", type=float, callback=finite, help="a measured value (finite)")
@pass_ctx
def raise_(
    ctx: Context,
    project: str | None,
    source: str,
    kind: str,
    severity: str,
    message: str,
    value: float | None,
) -> None:
    """Record a signal; it becomes (or updates, or clears) an alarm within a second."""
    result = ctx.call(
        "signal_raise",
        project=project,
        source=source,
        kind=kind,
        severity=severity,
        message=message,
        value=value,
    )
    show(ctx, result, f"signal {result['id']} raised")


@click.command()
@click.option("--open", "only_open", is_flag=True, help="only alarms not cleared")
@click.option("-p", "--project", help="only this project")
@click.option(
    "--severity", type=click.Choice(ALARM_SEVERITIES), multiple=True, help="only these severities"
)
@click.option("--wide", is_flag=True, help="every column, however wide")
@pass_ctx
def alarms(
    ctx: Context, only_open: bool, project: str | None, severity: tuple[str, ...], wide: bool
) -> None:
    """Alarms, newest first."""
    result = ctx.call(
        "alarms_list",
        state=[OPEN, ACKNOWLEDGED] if only_open else None,
        project=project,
        severity=list(severity) or None,
    )
    if ctx.as_json:
        show(ctx, result)
        return
    from spad.cli.tables import alarms_table

    alarms_table(result, wide, ctx.utc)


@click.group()
def alarm() -> None:
    """Acknowledge or clear an alarm."""


@alarm.command()
@click.argument("alarm_id", type=int)
@pass_ctx
def ack(ctx: Context, alarm_id: int) -> None:
    """Acknowledge alarm ALARM_ID (it stays until cleared)."""
    result = ctx.call("alarm_ack", id=alarm_id)
    show(ctx, result, f"alarm {result['id']}: {result['state']}")


@alarm.command(name="clear")
@click.argument("alarm_id", type=int)
@pass_ctx
def clear_(ctx: Context, alarm_id: int) -> None:
    """Clear alarm ALARM_ID."""
    result = ctx.call("alarm_clear", id=alarm_id)
    show(ctx, result, f"alarm {result['id']}: {result['state']}")
