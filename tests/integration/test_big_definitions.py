"""Big definitions: what create, update and delete cost grows with the tasks they name, not with
its square, and a big update keeps places, order and ids as a small one does.

The cost is counted, not timed: the statements the store runs (``set_trace_callback``) and
SQLite's virtual-machine steps (``set_progress_handler``), both deterministic. Shifting and
renumbering the workflow at each task made a dump-then-update of 5,000 tasks run 25 million
statements and hold the server for 90 s."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spad.definitions import catalog
from spad.definitions.model import parse_ref, parse_spec
from spad.store.sqlite import connect, migrate
from tests.conftest import task, tree

#: 4 times the tasks: about 4 times the work when linear, 16 times when quadratic.
SMALL, BIG = 150, 600
LINEAR_ENOUGH = 6.0
#: SQLite's virtual-machine instructions between two calls of the progress handler.
STEPS = 100


def one_workflow(tasks: list[dict[str, Any]], workflow: str = "wf1") -> dict[str, Any]:
    return tree([{"name": workflow, "tasks": tasks}])


def named(count: int, **fields: Any) -> list[dict[str, Any]]:
    return [task(f"t{i}", **fields) for i in range(count)]


def create_appending(conn: sqlite3.Connection, count: int) -> Callable[[], object]:
    return lambda: catalog.create(conn, parse_spec(one_workflow(named(count))))


def create_at_the_top(conn: sqlite3.Connection, count: int) -> Callable[[], object]:
    return lambda: catalog.create(conn, parse_spec(one_workflow(named(count, place=1))))


def create_many_workflows(conn: sqlite3.Connection, count: int) -> Callable[[], object]:
    workflows = [{"name": f"wf{i}", "tasks": [task("a")]} for i in range(count)]
    return lambda: catalog.create(conn, parse_spec(tree(workflows)))


def dump_then_update(conn: sqlite3.Connection, count: int) -> Callable[[], object]:
    catalog.create(conn, parse_spec(one_workflow(named(count))))
    dumped = catalog.dump(conn, "pr1", "wf1")
    return lambda: catalog.update(conn, parse_spec(dumped))


def update_moving_each(conn: sqlite3.Connection, count: int) -> Callable[[], object]:
    catalog.create(conn, parse_spec(one_workflow(named(count))))
    moves = [task(f"t{i}", place=count - i) for i in range(count)]
    return lambda: catalog.update(conn, parse_spec(one_workflow(moves)))


def delete_half(conn: sqlite3.Connection, count: int) -> Callable[[], object]:
    catalog.create(conn, parse_spec(one_workflow(named(count))))
    gone = [{"name": f"t{i}"} for i in range(0, count, 2)]
    return lambda: catalog.delete(conn, parse_ref(one_workflow(gone)))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Callable[[], sqlite3.Connection]]:
    """New stores, each in its own file, closed at the end."""
    opened: list[sqlite3.Connection] = []

    def make() -> sqlite3.Connection:
        conn = connect(tmp_path / f"spa{len(opened)}.db")
        migrate(conn)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


def cost(conn: sqlite3.Connection, command: Callable[[], object]) -> tuple[int, int]:
    """Statements run and hundreds of VM steps taken by ``command``."""
    counts = [0, 0]

    def statement(_: str) -> None:
        counts[0] += 1

    def steps() -> int:
        counts[1] += 1
        return 0  # go on

    conn.set_trace_callback(statement)
    conn.set_progress_handler(steps, STEPS)
    try:
        command()
    finally:
        conn.set_trace_callback(None)
        conn.set_progress_handler(None, STEPS)
    return counts[0], counts[1]


@pytest.mark.parametrize(
    "prepare",
    [
        create_appending,
        create_at_the_top,
        create_many_workflows,
        dump_then_update,
        update_moving_each,
        delete_half,
    ],
)
def test_the_cost_of_a_command_grows_linearly_with_its_tasks(
    fresh: Callable[[], sqlite3.Connection],
    prepare: Callable[[sqlite3.Connection, int], Callable[[], object]],
) -> None:
    small_conn, big_conn = fresh(), fresh()
    small = cost(small_conn, prepare(small_conn, SMALL))
    big = cost(big_conn, prepare(big_conn, BIG))
    statements, steps = big[0] / small[0], big[1] / small[1]
    assert statements < LINEAR_ENOUGH, f"statements {small[0]} -> {big[0]}"
    assert steps < LINEAR_ENOUGH, f"VM steps x{STEPS} {small[1]} -> {big[1]}"


def places(conn: sqlite3.Connection, workflow: str = "wf1") -> list[tuple[str, int]]:
    """``(name, ext_id)`` in order, checking places are 1..n."""
    tasks = catalog.dump(conn, "pr1", workflow)["context"]["project"]["workflows"][0]["tasks"]
    assert [t["place"] for t in tasks] == list(range(1, len(tasks) + 1))
    return [(t["name"], t["id"]) for t in tasks]


def insert_at(order: list[tuple[str, int]], place: int | None, item: tuple[str, int]) -> None:
    """The contract, on a list: at ``place``, the rest down; none or past the end: last."""
    at = place if place is not None and place <= len(order) else len(order) + 1
    order.insert(at - 1, item)


def test_a_big_create_and_update_keep_places_order_and_ids(conn: sqlite3.Connection) -> None:
    rng = random.Random(7)
    count = 2_000
    expected: list[tuple[str, int]] = []
    specs = []
    for i in range(count):  # every other one at a place of its own, some with an id of theirs
        place = rng.randint(1, count) if i % 2 else None
        ext_id = 10_000 + i if i % 7 == 0 else None
        fields = {k: v for k, v in (("place", place), ("id", ext_id)) if v is not None}
        specs.append(task(f"t{i}", "simple", str(i), **fields))
        highest = max((e for _, e in expected), default=0)
        insert_at(expected, place, (f"t{i}", ext_id if ext_id is not None else highest + 1))
    catalog.create(conn, parse_spec(one_workflow(specs)))
    assert places(conn) == expected

    before = catalog.dump(conn, "pr1")
    catalog.update(conn, parse_spec(before))
    assert catalog.dump(conn, "pr1") == before

    ext_ids = dict(expected)
    moves = []
    for name in rng.sample(sorted(ext_ids), 500):  # moved, or replaced where they stand
        place = rng.choice([None, 1, rng.randint(1, count), count + 5])
        moves.append(task(name, "error", **({"place": place} if place else {})))
        at = next(i for i, (n, _) in enumerate(expected) if n == name)
        del expected[at]
        insert_at(expected, place or at + 1, (name, ext_ids[name]))
    catalog.update(conn, parse_spec(one_workflow(moves)))
    assert places(conn) == expected
    dumped = catalog.dump(conn, "pr1")["context"]["project"]["workflows"][0]["tasks"]
    moved = {m["name"] for m in moves}
    assert {t["name"] for t in dumped if t["function"] == "error"} == moved
