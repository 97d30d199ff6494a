"""One function per JSON-RPC method, and the explicit allow-list :data:`METHODS`."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from typing import Any

from spad import areas, logfiles, procs, retention, states, transitions
from spad.alarms import journal
from spad.alarms import logic as alarm_logic
from spad.alarms.levels import CRITICAL, SEVERITIES, STATES
from spad.errors import Conflict, Invalid, NotFound
from spad.server.params import (
    boolean,
    checked,
    integer,
    name,
    number,
    one_of,
    one_or_more,
    optional,
    parse,
    text,
    timestamp,
)
from spad.server.rpc import Method, RawJSON
from spad.server.service import Service
from spad.store import alarms as alarm_store
from spad.store import audit, restarts, runs
from spad.store import definitions as defs
from spad.store import events as event_store
from spad.store.sqlite import transaction

PARAMS = dataclasses.dataclass(frozen=True, kw_only=True)


@PARAMS
class ProjectParams:
    project: str | None = checked(optional(name), None)


@PARAMS
class SelectParams:
    project: str = checked(name)


@PARAMS
class WorkflowParams:
    project: str | None = checked(optional(name), None)
    workflow: str = checked(name)


@PARAMS
class TaskParams(WorkflowParams):
    task: str | None = checked(optional(name), None)


@PARAMS
class DumpParams:
    project: str | None = checked(optional(name), None)
    workflow: str | None = checked(optional(name), None)
    task: str | None = checked(optional(name), None)


@PARAMS
class RunParams(TaskParams):
    from_task: str | None = checked(optional(name), None, alias="from")


@PARAMS
class StopParams(WorkflowParams):
    force: bool = checked(boolean, False)


@PARAMS
class SetStatusParams(WorkflowParams):
    task: str = checked(name)
    status: str = checked(text(100))


@PARAMS
class StatusParams(TaskParams):
    run_id: int | None = checked(optional(integer(1)), None)
    #: Each live task's resident memory: read from /proc, so only when asked.
    memory: bool = checked(boolean, False)


@PARAMS
class HistoryParams(WorkflowParams):
    limit: int = checked(integer(1, 10_000), 20)


@PARAMS
class HeartbeatParams(WorkflowParams):
    task: str = checked(name)


@PARAMS
class LogsParams(WorkflowParams):
    task: str | None = checked(optional(name), None)
    run_id: int | None = checked(optional(integer(1)), None)
    attempt: int | None = checked(optional(integer(1)), None)
    tail: int | None = checked(optional(integer(0, 1_000_000)), None)
    offset: int | None = checked(optional(integer(0)), None)


def select_project(svc: Service, p: SelectParams) -> dict[str, Any]:
    with transaction(svc.conn):
        _project(svc, p.project)
        defs.set_current_project(svc.conn, p.project)
    return {"project": p.project}


def create(svc: Service, params: Any) -> dict[str, Any]:
    # The definitions' model (msgspec and its compiled types) is loaded with the first
    # definition, not by a server that is only watched.
    from spad.definitions import catalog
    from spad.definitions.model import parse_spec

    spec = parse_spec(params)
    result = catalog.create(svc.conn, spec)
    functions = {t.function for wf in spec.workflows for t in wf.tasks}
    missing = sorted(f for f in functions if svc.home.executable(f) is None)
    if missing:  # defined before its program is copied in: fine, but say so before run fails
        result["warnings"] = [
            f"no executable {f} in bin/ yet: copy it with 'spa_ctl file put LOCAL bin/ --exec'"
            for f in missing
        ]
    return result


def update(svc: Service, params: Any) -> dict[str, Any]:
    from spad.definitions import catalog
    from spad.definitions.model import parse_spec

    return catalog.update(svc.conn, parse_spec(params))


def delete(svc: Service, params: Any) -> dict[str, Any]:
    """The tree cut at what to delete, or the short form ``{project?, workflow, task?}``."""
    if isinstance(params, dict) and "workflow" in params:
        short = parse(TaskParams, params)
        workflow: dict[str, Any] = {"name": short.workflow}
        if short.task:
            workflow["tasks"] = [{"name": short.task}]
        params = {"project": {"name": _project_name(svc, short.project), "workflows": [workflow]}}
    from spad.definitions import catalog
    from spad.definitions.model import parse_ref

    return catalog.delete(svc.conn, parse_ref(params))


def dump(svc: Service, p: DumpParams) -> dict[str, Any]:
    from spad.definitions import catalog

    return catalog.dump(svc.conn, _project_name(svc, p.project), p.workflow, p.task)


def list_(svc: Service, p: ProjectParams) -> dict[str, Any]:
    current = defs.current_project(svc.conn)
    rows = [_project(svc, p.project)] if p.project else defs.projects(svc.conn)
    projects = []
    for row in rows:
        workflows = [
            {
                "name": wf["name"],
                "status": wf["status"] or states.NOT_RUN,
                "run_id": wf["run_id"],
                "started_at": wf["started_at"],
                "ended_at": wf["ended_at"],
                "restarts": wf["restarts"] or 0,
            }
            for wf in runs.overview(svc.conn, row["id"])
        ]
        projects.append(
            {"name": row["name"], "current": row["name"] == current, "workflows": workflows}
        )
    return {"projects": projects}


def status(svc: Service, p: StatusParams) -> dict[str, Any] | RawJSON:
    if p.task is not None:
        head, rows = _status_parts(svc, p)
        tasks = [r for r in json.loads(rows) if r["name"] == p.task]
        if not tasks:
            raise NotFound(f"task {p.task!r} does not exist in {head['project']}/{p.workflow}")
        return {**head, "tasks": tasks}
    if p.memory:  # read live from /proc: never kept
        return _whole_status(svc, p)
    # The common case: a poll, often of a store that has not changed since the last one.
    key = ("status", p.project, p.workflow, p.run_id)
    kept = svc.reads.get(key)
    if kept is None:
        kept = _whole_status(svc, p)
        svc.reads.put(key, kept)
    return RawJSON(kept)


def _whole_status(svc: Service, p: StatusParams) -> RawJSON:
    """Every task, the rows as SQLite wrote them (the large reply: not decoded again)."""
    head, rows = _status_parts(svc, p)
    return RawJSON(json.dumps(head, ensure_ascii=False)[:-1] + f', "tasks": {rows}}}')


def _status_parts(svc: Service, p: StatusParams) -> tuple[dict[str, Any], str]:
    """The run's summary, and its tasks' rows as a JSON array."""
    project = _project_name(svc, p.project)
    wf = _workflow(svc, project, p.workflow)
    run = _run(svc, project, wf, p.run_id) if p.run_id else runs.latest(svc.conn, wf["id"])
    live = p.memory and run is not None and not run["finished"]
    memory = json.dumps(_task_memory(svc.conn, run["id"])) if live and run is not None else None
    rows = runs.status_rows_json(
        svc.conn, wf["id"], run, defined_since=p.run_id is None, memory=memory
    )
    head = {
        "project": project,
        "workflow": p.workflow,
        "status": run["status"] if run else states.NOT_RUN,
        "run_id": run["id"] if run else None,
        "started_at": run["started_at"] if run else None,
        "ended_at": run["ended_at"] if run else None,
        "resumed_from": run["resumed_from"] if run else None,
    }
    return head, rows


def _task_memory(conn: sqlite3.Connection, run_id: int) -> dict[str, int]:
    """Resident memory of each live task of a run, by pid (read from /proc, a few files each)."""
    return {
        str(pid): procs.resident_bytes(pid)
        for pid, identity in runs.live_task_pids(conn, run_id)
        if procs.is_alive(pid, identity)
    }


def run(svc: Service, p: RunParams) -> dict[str, Any]:
    if p.task and p.from_task:
        raise Invalid("give either task (run only that task) or from (start there), not both")
    project = _project_name(svc, p.project)
    wf = _workflow(svc, project, p.workflow)
    _check_disk(svc, project, p.workflow)
    run_id = svc.runners.start(project, wf, only_task=p.task, from_task=p.from_task)
    with transaction(svc.conn):
        defs.set_current_project(svc.conn, project)
    return {"run_id": run_id}


def restart(svc: Service, p: WorkflowParams) -> dict[str, Any]:
    """Graceful stop, then a new run once the old one ended (at once when none runs)."""
    project = _project_name(svc, p.project)
    wf = _workflow(svc, project, p.workflow)
    _check_disk(svc, project, p.workflow)
    unfinished = runs.unfinished(svc.conn, wf["id"])
    old = unfinished[0] if unfinished else None
    run_id = svc.runners.restart(project, wf, old)
    with transaction(svc.conn):
        defs.set_current_project(svc.conn, project)
    return {
        "project": project,
        "workflow": p.workflow,
        "stopping_run_id": old["id"] if old else None,
        "run_id": run_id,
    }


def history(svc: Service, p: HistoryParams) -> dict[str, Any]:
    project = _project_name(svc, p.project)
    wf = _workflow(svc, project, p.workflow)
    return {
        "project": project,
        "workflow": p.workflow,
        "runs": [
            {
                "run_id": row["id"],
                "status": row["status"],
                "started_at": row["started_at"],
                "ended_at": row["ended_at"],
                "ended_by": runs.ended_by(row),
                "resumed_from": row["resumed_from"],
            }
            for row in runs.history(svc.conn, wf["id"], p.limit)
        ],
    }


def stop(svc: Service, p: StopParams) -> dict[str, Any]:
    run = _to_stop(svc, p.project, p.workflow)
    if run["finished"]:  # ended, its restart not started yet: the later request wins
        svc.runners.call_off_restart(run)
        status = run["status"]
    elif svc.runners.stop(run, force=p.force):
        status = states.STOPPING
    else:  # no runner was left to stop: it ended at once
        after = runs.get(svc.conn, run["id"])
        status = after["status"] if after else states.STOPPED
    return {
        "project": run["project"],
        "workflow": p.workflow,
        "run_id": run["id"],
        "status": status,
    }


def set_status(svc: Service, p: SetStatusParams) -> dict[str, Any]:
    if p.status not in states.SETTABLE:
        raise Invalid(
            f"status {p.status!r} cannot be set: give 'waiting' or 'running'", field="status"
        )
    project = _project_name(svc, p.project)
    wf = _workflow(svc, project, p.workflow)
    run = runs.latest(svc.conn, wf["id"])
    row = runs.task(svc.conn, run["id"], p.task) if run else None
    if row is None and defs.task(svc.conn, wf["id"], p.task) is None:
        raise NotFound(f"task {p.task!r} does not exist in {project}/{p.workflow}")
    if run is None or row is None or run["finished"]:
        raise Conflict(f"{project}/{p.workflow} is not running task {p.task!r}")
    with transaction(svc.conn):
        waiting = p.status == states.WAITING
        # A job may set itself waiting before its runner saw it leave the queue.
        others = (states.RUNNING, states.QUEUED) if waiting else (states.WAITING,)
        event = transitions.SET_WAITING if waiting else transitions.SET_RUNNING
        changed = any(
            transitions.move_task(svc.conn, run["id"], p.task, other, event, p.status)
            for other in others
        )
    if not changed and row["status"] != p.status:
        raise Conflict(
            f"task {p.task!r} is {row['status']}: only a running task can be set to waiting, "
            "and only a waiting one back to running"
        )
    return {"project": project, "workflow": p.workflow, "task": p.task, "status": p.status}


def heartbeat(svc: Service, p: HeartbeatParams) -> dict[str, Any]:
    """A running task says it is alive: its ``idle_timeout`` starts again."""
    project = _project_name(svc, p.project)
    wf = _workflow(svc, project, p.workflow)
    run = runs.latest(svc.conn, wf["id"])
    row = runs.task(svc.conn, run["id"], p.task) if run else None
    if run is None or row is None or run["finished"] or row["status"] not in states.TASK_ACTIVE:
        raise Conflict(f"{project}/{p.workflow} is not running task {p.task!r}")
    at = time.time()
    with transaction(svc.conn):
        runs.record_heartbeat(svc.conn, run["id"], p.task, at)
    return {"project": project, "workflow": p.workflow, "task": p.task, "at": runs.iso(at)}


def logs(svc: Service, p: LogsParams) -> Any:
    project = _project_name(svc, p.project)
    wf = _workflow(svc, project, p.workflow)
    run = _run(svc, project, wf, p.run_id) if p.run_id else runs.latest(svc.conn, wf["id"])
    if run is None:
        raise NotFound(f"{project}/{p.workflow} has never run: no log yet")
    if p.task is None:
        return _every_task_log(svc, project, p, run)
    row = runs.task(svc.conn, run["id"], p.task)
    if row is None:
        raise NotFound(f"task {p.task!r} is not in run {run['id']} of {project}/{p.workflow}")
    attempt = p.attempt or row["attempt"]
    if not attempt:
        raise NotFound(f"task {p.task!r} has not started in run {run['id']}: no log yet")
    if attempt > row["attempt"]:
        raise NotFound(
            f"task {p.task!r} has no attempt {attempt} in run {run['id']} "
            f"(it started {row['attempt']} time{'s' if row['attempt'] > 1 else ''})"
        )
    path = logfiles.path_for(svc.home.logs, project, p.workflow, run["id"], p.task, attempt)
    if p.offset is not None and p.tail is not None:
        text, offset = logfiles.read_tail(path, p.tail), logfiles.size(path)
        return {"text": text, "offset": offset, "ended": row["ended_at"] is not None}
    if p.offset is not None:
        text, offset = logfiles.read_from(path, p.offset, whole=row["ended_at"] is not None)
        return {"text": text, "offset": offset, "ended": row["ended_at"] is not None}
    return logfiles.read_tail(path, p.tail)


def _every_task_log(svc: Service, project: str, p: LogsParams, run: sqlite3.Row) -> str:
    """Each started task's latest attempt (its last ``tail`` lines), every line prefixed by
    the task's name, in the tasks' order (as ``docker compose logs``)."""
    if p.attempt is not None or p.offset is not None:
        raise Invalid("attempt and offset need a task: give task too", field="task")
    started = [t for t in runs.tasks(svc.conn, run["id"]) if t["attempt"]]
    width = max((len(t["name"]) for t in started), default=0)
    share = max(logfiles.ENVELOPE * 4, logfiles.MAX_REPLY // max(1, len(started)))
    parts: list[str] = []
    for row in started:
        path = logfiles.path_for(
            svc.home.logs, project, p.workflow, run["id"], row["name"], row["attempt"]
        )
        text = logfiles.read_tail(path, p.tail, budget=share)  # the reply's cap, shared
        prefix = f"{row['name']:<{width}} | "
        parts.extend(prefix + line for line in text.splitlines(keepends=True))
    text = "".join(parts)
    text = text if not text or text.endswith("\n") else text + "\n"
    return logfiles.keep_end(text)


def _run(svc: Service, project: str, wf: sqlite3.Row, run_id: int) -> sqlite3.Row:
    run = runs.get(svc.conn, run_id)
    if run is None or run["workflow_id"] != wf["id"]:
        raise NotFound(f"{project}/{wf['name']} has no run {run_id}")
    return run


def _check_disk(svc: Service, project: str, workflow: str) -> None:
    """Refuse a new run below ``[retention] disk_min_free``, and raise a ``disk`` alarm."""
    free = retention.free_bytes(svc.home.root)
    floor = svc.policy.disk_min_free
    if free >= floor:
        return
    message = (
        f"only {retention.human(free)} free on the file system of {svc.home.root}, below "
        f"disk_min_free ({retention.human(floor)}, spad.toml [retention]): free some space "
        "(old runs' logs in logs/) before running"
    )
    with transaction(svc.conn):
        alarm_store.raise_signal(
            svc.conn, runs.now(), project, "spad", "disk", CRITICAL, message, float(free)
        )
    svc.wake_alarms()
    raise Conflict(f"cannot run {project}/{workflow}: {message}")


@PARAMS
class EventsParams:
    project: str | None = checked(optional(name), None)
    workflow: str | None = checked(optional(name), None)
    task: str | None = checked(optional(name), None)
    run_id: int | None = checked(optional(integer(1)), None)
    kind: str | None = checked(optional(one_of("task", "workflow", "alarm")), None)
    after: int = checked(integer(0), 0)
    limit: int = checked(integer(1, 10_000), 1000)
    newest_first: bool = checked(boolean, False)


def events(svc: Service, p: EventsParams) -> dict[str, Any]:
    """The journal of transitions (the newest 10,000), filtered; ``GET /events`` streams it."""
    rows = event_store.select(
        svc.conn,
        p.after,
        p.limit,
        p.newest_first,
        kind=p.kind,
        project=p.project,
        workflow=p.workflow,
        task=p.task,
        run_id=p.run_id,
    )
    found = [{"id": row["id"], "kind": row["kind"], **json.loads(row["data"])} for row in rows]
    return {"events": found, "last_id": event_store.newest_id(svc.conn)}


def _project_name(svc: Service, given: str | None) -> str:
    if given:
        return given
    current = defs.current_project(svc.conn)
    if current is None:
        raise NotFound("no current project: give one (-p PROJECT) or create one first")
    return current


def _project(svc: Service, name: str) -> sqlite3.Row:
    row = defs.project(svc.conn, name)
    if row is None:
        raise NotFound(f"project {name!r} does not exist: create it first", project=name)
    return row


def _workflow(svc: Service, project: str, name: str) -> sqlite3.Row:
    row = defs.workflow(svc.conn, _project(svc, project)["id"], name)
    if row is None:
        raise NotFound(
            f"workflow {name!r} does not exist in project {project!r}",
            project=project,
            workflow=name,
        )
    return row


def _to_stop(svc: Service, project: str | None, workflow: str) -> sqlite3.Row:
    """The unfinished run of ``workflow``, or its ended run whose restart is still to start;
    without a project, searched in every project."""
    if project is not None:
        named = [_workflow(svc, project, workflow)]
    else:
        named = defs.workflows_named(svc.conn, workflow)
        if not named:
            raise NotFound(
                f"workflow {workflow!r} does not exist in any project", workflow=workflow
            )
    candidates = [
        run
        for wf in named
        for run in runs.unfinished(svc.conn, wf["id"]) or restarts.asked(svc.conn, wf["id"])
    ]
    if not candidates:
        where = f"{project}/{workflow}" if project else f"workflow {workflow!r}"
        raise Conflict(f"{where} is not running: nothing to stop")
    if len(candidates) > 1:
        names = ", ".join(sorted(r["project"] for r in candidates))
        raise Conflict(f"workflow {workflow!r} runs in several projects ({names}): give -p PROJECT")
    return candidates[0]


@PARAMS
class FileParams:
    path: str = checked(text(4096), "")


@PARAMS
class AuditParams:
    limit: int = checked(integer(1, 10_000), 50)


def file_list(svc: Service, p: FileParams) -> dict[str, Any]:
    try:
        return {"entries": areas.listing(svc.home, p.path)}
    except OSError as exc:
        raise areas.as_error(exc, p.path) from None


def file_delete(svc: Service, p: FileParams) -> dict[str, Any]:
    try:
        place = areas.delete(svc.home, p.path)
    except OSError as exc:
        raise areas.as_error(exc, p.path) from None
    return {"path": place.remote, "deleted": True}


@PARAMS
class SignalParams:
    project: str | None = checked(optional(name), None)
    source: str = checked(name)
    kind: str = checked(name)
    severity: str = checked(one_of(*SEVERITIES))
    message: str = checked(text(10_000), "")
    value: float | None = checked(optional(number), None)


@PARAMS
class AlarmsParams:
    state: list[str] | None = checked(optional(one_or_more(one_of(*STATES))), None)
    severity: list[str] | None = checked(optional(one_or_more(one_of(*SEVERITIES))), None)
    project: str | None = checked(optional(name), None)
    since: str | None = checked(optional(timestamp), None)
    until: str | None = checked(optional(timestamp), None)
    limit: int = checked(integer(1, 100_000), 1000)


@PARAMS
class AlarmParams:
    id: int = checked(integer(1))


def signal_raise(svc: Service, p: SignalParams) -> dict[str, Any]:
    """Record a signal; the alarm watcher turns it into an alarm within its poll interval."""
    project = p.project
    if project is None:
        project = defs.current_project(svc.conn)
    with transaction(svc.conn):
        signal_id = alarm_store.raise_signal(
            svc.conn, runs.now(), project, p.source, p.kind, p.severity, p.message, p.value
        )
    svc.wake_alarms()
    return {"id": signal_id, "project": project}


def alarms_list(svc: Service, p: AlarmsParams) -> dict[str, Any]:
    def as_list(value: Any) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    rows = alarm_store.listing(
        svc.conn, as_list(p.state), as_list(p.severity), p.project, p.since, p.until, p.limit
    )
    return {"alarms": [alarm_logic.public(row) for row in rows]}


def alarm_ack(svc: Service, p: AlarmParams) -> dict[str, Any]:
    event = alarm_logic.acknowledge(svc.conn, p.id, "a person")
    journal.write(svc.home.logs, [event])
    return {key: event[key] for key in event if key not in ("event", "at")}


def alarm_clear(svc: Service, p: AlarmParams) -> dict[str, Any]:
    event = alarm_logic.clear(svc.conn, p.id, "a person")
    journal.write(svc.home.logs, [event])
    return {key: event[key] for key in event if key not in ("event", "at")}


def audit_(svc: Service, p: AuditParams) -> dict[str, Any]:
    rows = audit.latest(svc.conn, p.limit)
    return {"entries": [dict(row) for row in rows]}


#: The allow-list: only these names can be called.
METHODS: dict[str, Method] = {
    "select_project": Method(select_project, SelectParams, mutating=True),
    "create": Method(create, mutating=True),
    "delete": Method(delete, mutating=True),
    "update": Method(update, mutating=True),
    "run": Method(run, RunParams, mutating=True),
    "stop": Method(stop, StopParams, mutating=True),
    "status": Method(status, StatusParams),
    "history": Method(history, HistoryParams),
    "restart": Method(restart, WorkflowParams, mutating=True),
    "dump": Method(dump, DumpParams),
    "set_status": Method(set_status, SetStatusParams, mutating=True),
    "list": Method(list_, ProjectParams),
    "logs": Method(logs, LogsParams),
    # Not audited: a liveness ping every few seconds, like a task's output. Still a change
    # (it holds off a task's idle timeout): refused to a read-only token.
    "heartbeat": Method(heartbeat, HeartbeatParams, mutating=True, audited=False),
    "file_list": Method(file_list, FileParams),
    "file_delete": Method(file_delete, FileParams, mutating=True),
    "audit": Method(audit_, AuditParams),
    "events": Method(events, EventsParams),
    "signal_raise": Method(signal_raise, SignalParams, mutating=True),
    "alarms_list": Method(alarms_list, AlarmsParams),
    "alarm_ack": Method(alarm_ack, AlarmParams, mutating=True),
    "alarm_clear": Method(alarm_clear, AlarmParams, mutating=True),
}
