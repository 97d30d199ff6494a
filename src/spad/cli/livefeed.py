"""What ``spa_ctl events`` and ``spa_ctl watch`` share: the event stream, followed across
disconnections (it resumes after the last event seen, so nothing is missed), and one event as
a line of text."""

from __future__ import annotations

import time
from collections.abc import Iterator

from spad.cli.client import Client, ServerError, ServerEvent, Unreachable
from spad.cli.tables import local_time, printable

#: Seconds between attempts to get the stream back, doubling up to the last.
RECONNECT = (0.5, 1.0, 2.0, 5.0)


def follow(client: Client, last_event_id: int | None = None) -> Iterator[ServerEvent]:
    """Every event from the stream, for as long as the caller reads; comments too (the
    first one says the stream is open). A refused token ends it (ServerError)."""
    failures = 0
    while True:
        try:
            for message in client.events(last_event_id):
                failures = 0
                if message.id is not None:
                    last_event_id = message.id
                yield message
        except Unreachable:
            if failures == 0 and last_event_id is None:
                raise  # never connected: say so rather than wait
        except ServerError:
            raise
        time.sleep(RECONNECT[min(failures, len(RECONNECT) - 1)])
        failures += 1


def matches(event: ServerEvent, project: str | None, workflow: str | None) -> bool:
    data = event.data
    if project is not None and data.get("project") != project:
        return False
    return workflow is None or data.get("workflow") == workflow


def line(event: ServerEvent, utc: bool = False) -> str:
    data = event.data
    at = local_time(data.get("at"), utc)
    if event.kind == "alarm":
        what = f"alarm {data.get('id')} {data.get('project') or '-'}/{data.get('source')}"
        detail = f"{data.get('kind')} {data.get('severity')} {data.get('message') or ''}"
        return printable(f"{at}  {what}  {data.get('state')}  {detail}".rstrip(" "))
    where = f"{data.get('project')}/{data.get('workflow')}"
    if event.kind == "task":
        where += f"/{data.get('task')}"
    text = f"{at}  {event.kind:<8}  {where}  {data.get('status')}  run {data.get('run_id')}"
    if event.kind == "task" and data.get("attempt"):
        text += f"  attempt {data.get('attempt')}"
    if data.get("exit_code") is not None:
        text += f"  exit {data.get('exit_code')}"
    return printable(text)
