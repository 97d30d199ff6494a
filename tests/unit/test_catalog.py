"""Every rule of the definition tree (create, delete, update, dump) on a real SQLite file."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from spad.definitions import catalog
from spad.definitions.model import MAX_ID, parse_ref, parse_spec
from spad.errors import Conflict, Forbidden, Invalid, InvalidParams, NotFound
from spad.store import definitions as defs
from spad.store import runs
from tests.conftest import seed, task, tree


def create(conn: sqlite3.Connection, params: dict[str, Any]) -> dict[str, Any]:
    return catalog.create(conn, parse_spec(params))


def update(conn: sqlite3.Connection, params: dict[str, Any]) -> dict[str, Any]:
    return catalog.update(conn, parse_spec(params))


def delete(conn: sqlite3.Connection, params: dict[str, Any]) -> dict[str, Any]:
    return catalog.delete(conn, parse_ref(params))


def places(conn: sqlite3.Connection, workflow: str = "wf1", project: str = "pr1") -> list[str]:
    wf = catalog.dump(conn, project, workflow)["context"]["project"]["workflows"][0]
    assert [t["place"] for t in wf["tasks"]] == list(range(1, len(wf["tasks"]) + 1))
    return [t["name"] for t in wf["tasks"]]


def test_create_then_dump_gives_the_seed_back_with_defaults(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    dumped = catalog.dump(conn, "pr1")
    t11 = dumped["context"]["project"]["workflows"][0]["tasks"][0]
    assert t11 == {
        "id": 1,
        "name": "t11",
        "place": 1,
        "exec": "parallel",
        "function": "simple",
        "params": ["0"],
        "retries": 1,
        "retry_delay": 1.0,
        "stop_signal": "SIGTERM",
        "stop_timeout": 6.0,
        "env": {},
        "cwd": "data",
        "timeout": 0.0,
        "idle_timeout": 0.0,
        "memory_max": None,
        "executor": None,  # the workflow's
        "slurm_args": [],
    }
    assert dumped["context"]["project"]["workflows"][0]["executor"] == "local"
    assert dumped["context"]["project"]["id"] == 1
    assert [w["name"] for w in dumped["context"]["project"]["workflows"]] == ["wf1", "wf2"]


def test_dump_then_update_changes_nothing(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    before = catalog.dump(conn, "pr1")
    update(conn, before)
    assert catalog.dump(conn, "pr1") == before


def test_create_merges_into_an_existing_project_and_workflow(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    result = create(conn, tree([{"name": "wf1", "tasks": [task("t13")]}, {"name": "wf3"}]))
    assert result["workflows"][0] == {"name": "wf1", "new": False, "tasks": ["t13"]}
    assert places(conn) == ["t11", "t12", "t13"]
    assert places(conn, "wf3") == []
    assert places(conn, "wf2") == ["t21", "t22", "t23"]


def test_place_inserts_and_moves_the_rest_down(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    create(conn, tree([{"name": "wf1", "tasks": [task("first", place=1)]}]))
    assert places(conn) == ["first", "t11", "t12"]
    create(conn, tree([{"name": "wf1", "tasks": [task("middle", place=3)]}]))
    assert places(conn) == ["first", "t11", "middle", "t12"]


def test_no_place_or_past_the_end_appends(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    create(conn, tree([{"name": "wf1", "tasks": [task("a"), task("b", place=99)]}]))
    assert places(conn) == ["t11", "t12", "a", "b"]


def test_an_existing_task_name_is_a_conflict_and_nothing_changes(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    before = catalog.dump(conn, "pr1")
    with pytest.raises(Conflict, match="use update"):
        create(conn, tree([{"name": "wf1", "tasks": [task("new1"), task("t12")]}, {"name": "wf9"}]))
    assert catalog.dump(conn, "pr1") == before


def test_create_makes_the_project_current(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    create(conn, tree([], project="other"))
    assert defs.current_project(conn) == "other"


def test_ids_are_kept_and_missing_ones_assigned(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    create(conn, tree([{"name": "wf1", "tasks": [task("t13"), task("t14", id=40)]}]))
    ids = {
        t["name"]: t["id"]
        for t in catalog.dump(conn, "pr1", "wf1")["context"]["project"]["workflows"][0]["tasks"]
    }
    assert ids == {"t11": 1, "t12": 2, "t13": 6, "t14": 40}


def test_delete_a_whole_workflow(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    delete(conn, tree([{"name": "wf2"}]))
    with pytest.raises(NotFound):
        catalog.dump(conn, "pr1", "wf2")
    delete(conn, tree([{"name": "wf1", "tasks": []}]))
    assert catalog.dump(conn, "pr1")["context"]["project"]["workflows"] == []


def test_deleting_tasks_closes_up_places(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    delete(conn, tree([{"name": "wf2", "tasks": [{"name": "t21"}]}]))
    assert places(conn, "wf2") == ["t22", "t23"]


def test_several_deletions_in_one_tree(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    delete(
        conn,
        tree(
            [
                {"name": "wf1", "tasks": [{"name": "t11"}]},
                {"name": "wf2", "tasks": [{"name": "t21"}, {"name": "t23"}]},
            ]
        ),
    )
    assert places(conn) == ["t12"]
    assert places(conn, "wf2") == ["t22"]


def test_a_project_cannot_be_deleted(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    for params in (tree([]), {"project": {"name": "pr1"}}):
        with pytest.raises(Forbidden, match="cannot be deleted"):
            delete(conn, params)


@pytest.mark.parametrize(
    "params",
    [
        tree([{"name": "wf1"}], project="nope"),
        tree([{"name": "nope"}]),
        tree([{"name": "wf1", "tasks": [{"name": "nope"}]}]),
    ],
)
def test_deleting_what_does_not_exist_is_not_found(
    conn: sqlite3.Connection, params: dict[str, Any]
) -> None:
    create(conn, seed())
    with pytest.raises(NotFound):
        delete(conn, params)


def test_delete_is_atomic(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    before = catalog.dump(conn, "pr1")
    with pytest.raises(NotFound):
        delete(conn, tree([{"name": "wf1"}, {"name": "wf2", "tasks": [{"name": "missing"}]}]))
    assert catalog.dump(conn, "pr1") == before


def test_update_replaces_the_tasks_given_in_place(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    update(conn, tree([{"name": "wf1", "tasks": [task("t11", "error", "3", retries=4)]}]))
    dumped = catalog.dump(conn, "pr1", "wf1", "t11")["context"]["project"]["workflows"][0]
    t11 = dumped["tasks"][0]
    assert (t11["function"], t11["params"], t11["retries"], t11["place"], t11["id"]) == (
        "error",
        ["3"],
        4,
        1,
        1,
    )
    assert t11["exec"] == "await"  # the whole entity: what is not given takes its default
    assert places(conn) == ["t11", "t12"]


def test_update_can_move_a_task(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    update(conn, tree([{"name": "wf2", "tasks": [task("t23", "error", place=1)]}]))
    assert places(conn, "wf2") == ["t23", "t21", "t22"]


def test_update_of_a_workflow_without_tasks_replaces_it_whole(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    update(conn, tree([{"name": "wf2", "on_failure": "continue"}]))
    wf = catalog.dump(conn, "pr1", "wf2")["context"]["project"]["workflows"][0]
    assert (wf["on_failure"], wf["tasks"], wf["id"]) == ("continue", [], 2)


def test_update_of_what_does_not_exist_is_not_found_and_atomic(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    before = catalog.dump(conn, "pr1")
    with pytest.raises(NotFound, match="does not exist"):
        update(
            conn,
            tree(
                [
                    {"name": "wf1", "tasks": [task("t11", "error")]},
                    {"name": "wf2", "tasks": [task("ghost")]},
                ]
            ),
        )
    assert catalog.dump(conn, "pr1") == before


def test_a_running_workflow_cannot_be_changed(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    project = defs.project(conn, "pr1")
    assert project is not None
    workflow = defs.workflow(conn, project["id"], "wf1")
    assert workflow is not None
    runs.create(conn, workflow["id"], ["t11", "t12"])
    before = catalog.dump(conn, "pr1")
    attempts = [
        lambda: create(conn, tree([{"name": "wf1", "tasks": [task("t13")]}])),
        lambda: update(conn, tree([{"name": "wf1", "tasks": [task("t11")]}])),
        lambda: delete(conn, tree([{"name": "wf1"}])),
        lambda: delete(conn, tree([{"name": "wf1", "tasks": [{"name": "t11"}]}])),
    ]
    for attempt in attempts:
        with pytest.raises(Conflict, match="stop it first"):
            attempt()
    assert catalog.dump(conn, "pr1") == before
    create(conn, tree([{"name": "wf2", "tasks": [task("t24")]}]))  # the others can change


def test_dump_of_a_missing_thing_is_not_found(conn: sqlite3.Connection) -> None:
    create(conn, seed())
    for args in (("nope",), ("pr1", "nope"), ("pr1", "wf1", "nope"), ("pr1", None, "t11")):
        with pytest.raises(NotFound):
            catalog.dump(conn, *args)


def test_executor_on_workflow_and_task_is_kept_and_dumped(conn: sqlite3.Connection) -> None:
    create(
        conn,
        tree(
            [
                {
                    "name": "w",
                    "executor": "slurm",
                    "tasks": [
                        task("a"),
                        task("b", executor="local"),
                        task("c", slurm_args=["--time=5"]),
                    ],
                }
            ]
        ),
    )
    wf = catalog.dump(conn, "pr1", "w")["context"]["project"]["workflows"][0]
    assert wf["executor"] == "slurm"
    assert [(t["executor"], t["slurm_args"]) for t in wf["tasks"]] == [
        (None, []),
        ("local", []),
        (None, ["--time=5"]),
    ]
    before = catalog.dump(conn, "pr1")
    update(conn, before)
    assert catalog.dump(conn, "pr1") == before


def test_an_unknown_executor_is_invalid_and_names_the_field() -> None:
    with pytest.raises(InvalidParams, match=r"workflows\[0\]\.executor"):
        parse_spec(tree([{"name": "w", "executor": "k8s", "tasks": [task("a")]}]))
    with pytest.raises(InvalidParams, match=r"tasks\[0\]\.slurm_args"):
        parse_spec(tree([{"name": "w", "tasks": [task("a", slurm_args="--time=5")]}]))


def test_no_id_is_given_past_the_largest_a_definition_may_hold(conn: sqlite3.Connection) -> None:
    """A task after one of id 2**62 got 2**62 + 1: dump gave it back and update refused it."""
    create(conn, tree([{"name": "wf1", "tasks": [task("d", id=MAX_ID)]}]))
    with pytest.raises(Invalid, match="no task id is left above"):
        create(conn, tree([{"name": "wf1", "tasks": [task("f")]}]))
    assert places(conn) == ["d"]  # nothing was added
    before = catalog.dump(conn, "pr1")
    update(conn, before)  # dump then update changes nothing
    assert catalog.dump(conn, "pr1") == before


def test_no_project_id_is_given_past_the_largest(conn: sqlite3.Connection) -> None:
    create(conn, {"project": {"id": MAX_ID, "name": "a", "workflows": []}})
    with pytest.raises(Invalid, match="no project id is left"):
        create(conn, {"project": {"name": "b", "workflows": []}})
    assert defs.project(conn, "b") is None
