"""create / delete / update / dump: the contract's semantics of the definition tree.

Each command runs in one transaction: it changes all it asks, or nothing (any error raised
inside rolls back). Places stay 1..n.

A command reads a workflow's tasks once, keeps their order in memory while it adds and replaces
them, and writes the places that changed at its end: its cost grows with the tasks it names, not
with their square (a dump-then-update of 5,000 tasks ran 25 million statements, 108 s, when the
store shifted and renumbered the workflow at each task).
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from spad.definitions.model import MAX_ID, ProjectRef, ProjectSpec, WorkflowSpec, fields_of
from spad.errors import Conflict, Forbidden, Invalid, NotFound
from spad.store import definitions as defs
from spad.store import runs
from spad.store.sqlite import transaction


def create(conn: sqlite3.Connection, spec: ProjectSpec) -> dict[str, Any]:
    """Add what is missing, merge into what exists; an existing task is a conflict."""
    with transaction(conn):
        project_id = _ensure_project(conn, spec)
        ids = _NewIds(
            workflows=_ExtIds("workflow", lambda: defs.max_workflow_ext_id(conn, project_id)),
            tasks=_ExtIds("task", lambda: defs.max_task_ext_id(conn, project_id)),
        )
        created: list[dict[str, Any]] = []
        for wf in spec.workflows:
            created.append(_create_workflow(conn, project_id, spec.name, wf, ids))
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
            tasks = _Tasks(conn, row["id"], 0)
            for task in wf.tasks:
                if task.name not in tasks:
                    raise _no_task(ref.name, row, task.name)
                tasks.delete(conn, task.name)
            tasks.write_places(conn)
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
        ext_id = _ExtIds("project", lambda: defs.max_project_ext_id(conn)).take(spec.id)
        return defs.insert_project(conn, spec.name, ext_id)
    if spec.id is not None and spec.id != row["ext_id"]:
        defs.set_project_ext_id(conn, row["id"], spec.id)
    return int(row["id"])


def _create_workflow(
    conn: sqlite3.Connection,
    project_id: int,
    project: str,
    wf: WorkflowSpec,
    ids: _NewIds,
) -> dict[str, Any]:
    row = defs.workflow(conn, project_id, wf.name)
    if row is None:
        ext_id = ids.workflows.take(wf.id)
        workflow_id = defs.insert_workflow(
            conn, project_id, wf.name, ext_id, wf.policy, wf.executor or "local"
        )
        is_new = True
    else:
        _refuse_if_running(conn, row, project, "changed")
        workflow_id = row["id"]
        defs.update_workflow(conn, workflow_id, wf.id, wf.on_failure, wf.executor)
        is_new = False
    tasks = _Tasks(conn, workflow_id, len(wf.tasks))
    for task in wf.tasks:
        if task.name in tasks:
            raise Conflict(
                f"task {task.name!r} already exists in {project}/{wf.name}: "
                "use update to replace it, or give it another name",
                project=project,
                workflow=wf.name,
                task=task.name,
            )
        fields = fields_of(task)
        fields["id"] = ids.tasks.take(task.id)
        tasks.insert(conn, fields, task.place)
    tasks.write_places(conn)
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
    tasks = _Tasks(conn, row["id"], 0)
    for task in wf.tasks:
        if task.name not in tasks:
            raise _no_task(project, row, task.name)
        old_ext_id, old_place = tasks.delete(conn, task.name)
        fields = fields_of(task)
        if task.id is None:
            fields["id"] = old_ext_id
        tasks.insert(conn, fields, task.place or old_place)
    tasks.write_places(conn)
    return {"name": wf.name, "whole": False, "tasks": [t.name for t in wf.tasks]}


class _ExtIds:
    """The ext_ids a ``create`` gives its new projects, workflows or tasks: the one given, else
    one above the highest; the highest is read once, not at each new one (each read goes over
    the whole project)."""

    def __init__(self, what: str, read_highest: Callable[[], int]) -> None:
        self._what = what
        self._read_highest = read_highest
        self._highest: int | None = None  # not read yet

    def take(self, given: int | None) -> int:
        if given is None and self._highest is None:  # what was inserted before is in the store
            self._highest = self._read_highest()
        ext_id = given if given is not None else (self._highest or 0) + 1
        if ext_id > MAX_ID:  # dump would give it back, and update refuse it
            raise Invalid(
                f"no {self._what} id is left above {self._highest} (ids go up to {MAX_ID}): "
                f"give the new {self._what} an id of its own"
            )
        if self._highest is not None:
            self._highest = max(self._highest, ext_id)
        return ext_id


class _NewIds(NamedTuple):
    workflows: _ExtIds
    tasks: _ExtIds


class _Tasks:
    """One workflow's tasks while a command adds and replaces them: read once, their order kept
    here, the places that changed written at the end (:meth:`write_places`). Rows are inserted
    and deleted in the order the command names them, so they get the ids they always got."""

    def __init__(self, conn: sqlite3.Connection, workflow_id: int, adding: int) -> None:
        rows = defs.task_order(conn, workflow_id)
        self._workflow_id = workflow_id
        #: name -> (task id, ext_id)
        self._rows: dict[str, tuple[int, int]] = {r["name"]: (r["id"], r["ext_id"]) for r in rows}
        self._order = _Order([r["id"] for r in rows], len(rows) + adding)
        #: task id -> the place its row holds now
        self._written: dict[int, int] = {r["id"]: r["place"] for r in rows}

    def __contains__(self, name: str) -> bool:
        return name in self._rows

    def insert(self, conn: sqlite3.Connection, fields: dict[str, Any], place: int | None) -> None:
        """At ``place``, moving the tasks there and below down; no place or past the end: last."""
        end = len(self._order) + 1
        at = place if place is not None and place < end else end
        task_id = defs.insert_task(conn, self._workflow_id, fields, at)
        self._order.insert(at, task_id)
        self._rows[fields["name"]] = (task_id, fields["id"])
        self._written[task_id] = at

    def delete(self, conn: sqlite3.Connection, name: str) -> tuple[int, int]:
        """Delete task ``name``, closing up the places after it: its ext_id and its place."""
        task_id, ext_id = self._rows.pop(name)
        place = self._order.place_of(task_id)
        self._order.remove(task_id)
        del self._written[task_id]
        defs.delete_task(conn, task_id)
        return ext_id, place

    def write_places(self, conn: sqlite3.Connection) -> None:
        moved = [
            (place, task_id)
            for place, task_id in enumerate(self._order, start=1)
            if self._written[task_id] != place
        ]
        defs.set_places(conn, moved)


class _Order:
    """Keys in order, in blocks of about sqrt(n): an insert at a place, a removal and a key's
    place each cost about sqrt(n) steps, where one list would move n keys at each change."""

    _MIN_BLOCK = 64

    def __init__(self, keys: list[int], expected: int) -> None:
        self._width = max(self._MIN_BLOCK, math.isqrt(expected))
        width = self._width
        self._blocks = [keys[i : i + width] for i in range(0, len(keys), width)] or [[]]
        self._block_of = {key: block for block in self._blocks for key in block}

    def __len__(self) -> int:
        return len(self._block_of)

    def __iter__(self) -> Iterator[int]:
        return itertools.chain.from_iterable(self._blocks)

    def insert(self, place: int, key: int) -> None:
        """``key`` at ``place`` (1 is first, ``len + 1`` last)."""
        index = place - 1
        number = 0
        while index > len(self._blocks[number]) and number + 1 < len(self._blocks):
            index -= len(self._blocks[number])
            number += 1
        block = self._blocks[number]
        block.insert(index, key)
        self._block_of[key] = block
        if len(block) > 2 * self._width:  # split it in two
            tail = block[self._width :]
            del block[self._width :]
            self._blocks.insert(number + 1, tail)
            self._block_of.update(dict.fromkeys(tail, tail))

    def remove(self, key: int) -> None:
        self._block_of.pop(key).remove(key)

    def place_of(self, key: int) -> int:
        block = self._block_of[key]
        before = 0
        for other in self._blocks:
            if other is block:
                break
            before += len(other)
        return before + block.index(key) + 1


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
        raise _no_task(project, workflow, name)
    return row


def _no_task(project: str, workflow: sqlite3.Row, name: str) -> NotFound:
    return NotFound(
        f"task {name!r} does not exist in {project}/{workflow['name']}",
        project=project,
        workflow=workflow["name"],
        task=name,
    )


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
