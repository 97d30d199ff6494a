"""create / delete / update / dump: the contract's semantics of the definition tree.

Each command runs in one transaction: it changes all it asks, or nothing (any error raised
inside rolls back). Places stay 1..n.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from spad.definitions.model import ProjectRef, ProjectSpec, TaskSpec, WorkflowSpec, fields_of
from spad.errors import Conflict, Forbidden, NotFound
from spad.store import definitions as defs
from spad.store import runs
from spad.store.sqlite import transaction


def create(conn: sqlite3.Connection, spec: ProjectSpec) -> dict[str, Any]:
    """Add what is missing, merge into what exists; an existing task is a conflict."""
    with transaction(conn):
        project_id = _ensure_project(conn, spec)
        created: list[dict[str, Any]] = []
        for wf in spec.workflows:
            created.append(_create_workflow(conn, project_id, spec.name, wf))
        defs.set_current_project(conn, spec.name)
    return {"project": spec.name, "workflows": created}


def update(conn: sqlite3.Connection, spec: ProjectSpec) -> dict[str, Any]:
    """Replace each leaf given (delete then create), all in one transaction.

    A workflow with tasks: each listed task is replaced (at its old place unless ``place`` says
    otherwise), and the workflow's own fields too. A workflow without tasks: replaced whole, by
    an empty one. What does not exist is ``not_found``: add it with ``create``.
    """
    with transaction(conn):
        project = _existing_project(conn, spec.name)
        if spec.id is not None:
            defs.set_project_ext_id(conn, project["id"], spec.id)
        replaced: list[dict[str, Any]] = []
        for wf in spec.workflows:
            replaced.append(_update_workflow(conn, project["id"], spec.name, wf))
        defs.set_current_project(conn, spec.name)
    return {"project": spec.name, "workflows": replaced}


def delete(conn: sqlite3.Connection, ref: ProjectRef) -> dict[str, Any]:
    """Remove the leaves of the tree: whole workflows (no ``tasks``) or the listed tasks."""
    if not ref.workflows:
        raise Forbidden(
            f"a project cannot be deleted: name the workflows or tasks of {ref.name!r} to delete"
        )
    with transaction(conn):
        project = _existing_project(conn, ref.name)
        deleted: list[dict[str, Any]] = []
        for wf in ref.workflows:
            row = _existing_workflow(conn, project["id"], ref.name, wf.name)
            _refuse_if_running(conn, row, ref.name, "deleted")
            if not wf.tasks:
                defs.delete_workflow(conn, row["id"])
                deleted.append({"name": wf.name, "whole": True, "tasks": []})
                continue
            for task in wf.tasks:
                defs.delete_task(conn, _existing_task(conn, row, ref.name, task.name)["id"])
            defs.close_up_places(conn, row["id"])
            deleted.append({"name": wf.name, "whole": False, "tasks": [t.name for t in wf.tasks]})
        defs.set_current_project(conn, ref.name)
    return {"project": ref.name, "workflows": deleted}


def dump(
    conn: sqlite3.Connection, project: str, workflow: str | None = None, task: str | None = None
) -> dict[str, Any]:
    """The definition tree, every field filled in; ``update`` with it changes nothing."""
    row = _existing_project(conn, project)
    if workflow is None:
        if task is not None:
            raise NotFound("give the workflow of the task to dump (-w WORKFLOW)")
        wf_rows = defs.workflows(conn, row["id"])
    else:
        wf_rows = [_existing_workflow(conn, row["id"], project, workflow)]
    workflows = []
    for wf in wf_rows:
        task_rows = (
            [_existing_task(conn, wf, project, task)] if task else defs.tasks(conn, wf["id"])
        )
        workflows.append(
            {
                "id": wf["ext_id"],
                "name": wf["name"],
                "on_failure": wf["on_failure"],
                "executor": wf["executor"],
                "tasks": [defs.task_as_dict(t) for t in task_rows],
            }
        )
    return {"context": {"project": {"id": row["ext_id"], "name": project, "workflows": workflows}}}


def is_running(conn: sqlite3.Connection, workflow_id: int) -> bool:
    """A workflow is running while it has an unfinished run (even one waiting to be resumed)."""
    return bool(runs.unfinished(conn, workflow_id))


def _ensure_project(conn: sqlite3.Connection, spec: ProjectSpec) -> int:
    row = defs.project(conn, spec.name)
    if row is None:
        return defs.insert_project(conn, spec.name, spec.id)
    if spec.id is not None and spec.id != row["ext_id"]:
        defs.set_project_ext_id(conn, row["id"], spec.id)
    return int(row["id"])


def _create_workflow(
    conn: sqlite3.Connection, project_id: int, project: str, wf: WorkflowSpec
) -> dict[str, Any]:
    row = defs.workflow(conn, project_id, wf.name)
    if row is None:
        workflow_id = defs.insert_workflow(
            conn, project_id, wf.name, wf.id, wf.policy, wf.executor or "local"
        )
        is_new = True
    else:
        _refuse_if_running(conn, row, project, "changed")
        workflow_id = row["id"]
        defs.update_workflow(conn, workflow_id, wf.id, wf.on_failure, wf.executor)
        is_new = False
    for task in wf.tasks:
        if defs.task(conn, workflow_id, task.name) is not None:
            raise Conflict(
                f"task {task.name!r} already exists in {project}/{wf.name}: "
                "use update to replace it, or give it another name",
                project=project,
                workflow=wf.name,
                task=task.name,
            )
        _insert_task(conn, workflow_id, project_id, task, task.place)
    return {"name": wf.name, "new": is_new, "tasks": [t.name for t in wf.tasks]}


def _update_workflow(
    conn: sqlite3.Connection, project_id: int, project: str, wf: WorkflowSpec
) -> dict[str, Any]:
    row = _existing_workflow(conn, project_id, project, wf.name)
    _refuse_if_running(conn, row, project, "changed")
    if not wf.tasks:
        defs.delete_workflow(conn, row["id"])
        ext_id = wf.id if wf.id is not None else row["ext_id"]
        defs.insert_workflow(conn, project_id, wf.name, ext_id, wf.policy, wf.executor or "local")
        return {"name": wf.name, "whole": True, "tasks": []}
    defs.update_workflow(conn, row["id"], wf.id, wf.on_failure, wf.executor)
    for task in wf.tasks:
        old = _existing_task(conn, row, project, task.name)
        defs.delete_task(conn, old["id"])
        defs.close_up_places(conn, row["id"])
        fields = fields_of(task)
        if task.id is None:
            fields["id"] = old["ext_id"]
        _insert_task(conn, row["id"], project_id, task, task.place or old["place"], fields)
    return {"name": wf.name, "whole": False, "tasks": [t.name for t in wf.tasks]}


def _insert_task(
    conn: sqlite3.Connection,
    workflow_id: int,
    project_id: int,
    task: TaskSpec,
    place: int | None,
    fields: dict[str, Any] | None = None,
) -> None:
    end = defs.task_count(conn, workflow_id) + 1
    at = place if place is not None and place < end else end
    defs.insert_task(conn, workflow_id, project_id, fields or fields_of(task), at)


def _existing_project(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = defs.project(conn, name)
    if row is None:
        raise NotFound(f"project {name!r} does not exist: create it first", project=name)
    return row


def _existing_workflow(
    conn: sqlite3.Connection, project_id: int, project: str, name: str
) -> sqlite3.Row:
    row = defs.workflow(conn, project_id, name)
    if row is None:
        raise NotFound(
            f"workflow {name!r} does not exist in project {project!r}",
            project=project,
            workflow=name,
        )
    return row


def _existing_task(
    conn: sqlite3.Connection, workflow: sqlite3.Row, project: str, name: str
) -> sqlite3.Row:
    row = defs.task(conn, workflow["id"], name)
    if row is None:
        raise NotFound(
            f"task {name!r} does not exist in {project}/{workflow['name']}",
            project=project,
            workflow=workflow["name"],
            task=name,
        )
    return row


def _refuse_if_running(
    conn: sqlite3.Connection, workflow: sqlite3.Row, project: str, verb: str
) -> None:
    if is_running(conn, workflow["id"]):
        raise Conflict(
            f"workflow {project}/{workflow['name']} is running and cannot be {verb}: "
            f"stop it first (spa_ctl stop -p {project} -w {workflow['name']})",
            project=project,
            workflow=workflow["name"],
        )
