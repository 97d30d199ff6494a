"""The definition tree: the seed's format, defaults, and every refusal naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from spad.definitions.model import parse_ref, parse_spec
from spad.errors import InvalidParams
from tests.conftest import seed


def refused(params: Any) -> str:
    with pytest.raises(InvalidParams) as caught:
        parse_spec(params)
    return caught.value.message


def test_the_seed_parses_with_every_default_filled_in() -> None:
    project = parse_spec(seed())
    assert project.name == "pr1" and project.id == 1
    t11 = project.workflows[0].tasks[0]
    assert (t11.name, t11.place, t11.exec, t11.function, t11.params) == (
        "t11",
        1,
        "parallel",
        "simple",
        ["0"],
    )
    assert (t11.retries, t11.retry_delay, t11.stop_signal, t11.stop_timeout) == (
        1,
        1.0,
        "SIGTERM",
        6.0,
    )
    assert (t11.env, t11.cwd) == ({}, "data")
    assert project.workflows[0].policy == "stop"


def test_project_without_context_is_accepted() -> None:
    assert parse_spec(seed()["context"]).name == "pr1"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p["workflows"][0]["tasks"][0].update(bogus=1), "workflows[0].tasks[0].bogus"),
        (lambda p: p.update(colour="red"), "project.colour"),
        (lambda p: p["workflows"][0].update(on_failure="explode"), "on_failure"),
        (lambda p: p["workflows"][0]["tasks"][0].update(exec="later"), "tasks[0].exec"),
        (lambda p: p["workflows"][0]["tasks"][0].pop("function"), "tasks[0].function"),
        (lambda p: p["workflows"][0]["tasks"][0].update(retries=-2), "tasks[0].retries"),
        (lambda p: p["workflows"][0]["tasks"][0].update(stop_signal="SIGNOPE"), "stop_signal"),
        (lambda p: p["workflows"][0]["tasks"][0].update(stop_signal="SIGKILL"), "stop_signal"),
        (lambda p: p["workflows"][0]["tasks"][0].update(stop_timeout=-1), "stop_timeout"),
        (lambda p: p["workflows"][0]["tasks"][0].update(place=0), "tasks[0].place"),
        (lambda p: p["workflows"][0]["tasks"][0].update(params="0"), "tasks[0].params"),
        (lambda p: p["workflows"][0]["tasks"][0].update(env={"A-B": "x"}), "tasks[0].env"),
        (lambda p: p["workflows"][0]["tasks"][0].update(env={"SPA_TASK": "x"}), "env"),
        (lambda p: p["workflows"][0]["tasks"][1].update(name="t11"), "workflows[0].tasks"),
        (lambda p: p.update(id="one"), "project.id"),
        (lambda p: p["workflows"][0]["tasks"][0].update(timeout=-1), "tasks[0].timeout"),
        (lambda p: p["workflows"][0]["tasks"][0].update(idle_timeout="x"), "idle_timeout"),
        (lambda p: p["workflows"][0]["tasks"][0].update(memory_max="12X"), "memory_max"),
        (lambda p: p["workflows"][0]["tasks"][0].update(memory_max=True), "memory_max"),
        (lambda p: p["workflows"][0]["tasks"][0].update(memory_max=4096), "memory_max"),
        (lambda p: p["workflows"][0]["tasks"][0].update(memory_max="9" * 400 + "T"), "memory_max"),
    ],
)
def test_a_bad_field_is_refused_by_name(mutate: Any, field: str) -> None:
    params = seed()
    mutate(params["context"]["project"])
    assert field in refused(params)


@pytest.mark.parametrize("name", ["a/b", "..", ".hidden", "", "x\ny", "tab\t", "a" * 101, "-x"])
def test_names_that_could_act_as_paths_are_refused(name: str) -> None:
    for where in ("project", "workflow", "task", "function"):
        params = seed()
        project = params["context"]["project"]
        target = {
            "project": project,
            "workflow": project["workflows"][0],
            "task": project["workflows"][0]["tasks"][0],
        }
        if where == "function":
            project["workflows"][0]["tasks"][0]["function"] = name
        else:
            target[where]["name"] = name
        message = refused(params)
        assert "name" in message or "function" in message


def test_numbers_in_params_are_taken_as_text_but_booleans_are_not() -> None:
    params = seed()
    params["context"]["project"]["workflows"][0]["tasks"][0]["params"] = [5, 1.5]
    assert parse_spec(params).workflows[0].tasks[0].params == ["5", "1.5"]
    params["context"]["project"]["workflows"][0]["tasks"][0]["params"] = [True]
    assert "params[0]" in refused(params)


def test_signal_names_are_normalised() -> None:
    params = seed()
    params["context"]["project"]["workflows"][0]["tasks"][0]["stop_signal"] = "int"
    assert parse_spec(params).workflows[0].tasks[0].stop_signal == "SIGINT"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], "definition tree"),
        ({"context": []}, "context must be an object"),
        ({"context": {}}, 'needs "project"'),
        ({"project": "pr1"}, "project must be an object"),
        ({"project": {"name": "p"}, "extra": 1}, "extra: unknown key"),
        ({"context": {"project": {"name": "p"}}, "x": 1}, "x: unknown key"),
    ],
)
def test_the_tree_shape_is_checked(params: Any, expected: str) -> None:
    assert expected in refused(params)


def test_delete_takes_names_and_tolerates_a_dumps_fields() -> None:
    ref = parse_ref(
        {
            "project": {
                "name": "pr1",
                "workflows": [
                    {"name": "wf1", "tasks": [{"name": "t11", "function": "simple", "retries": 3}]},
                    {"name": "wf2"},
                ],
            }
        }
    )
    assert ref.workflows is not None
    assert ref.workflows[0].tasks is not None and ref.workflows[0].tasks[0].name == "t11"
    assert ref.workflows[1].tasks is None
    with pytest.raises(InvalidParams, match="colour"):
        parse_ref({"project": {"name": "pr1", "workflows": [{"name": "w", "colour": 1}]}})


@pytest.mark.parametrize(
    ("given", "size"),
    [
        ("512M", 512 << 20),
        ("2G", 2 << 30),
        ("1.5g", 3 << 29),
        ("64 M", 64 << 20),
        (1 << 20, 1 << 20),
    ],
)
def test_memory_max_takes_bytes_or_a_size(given: Any, size: int) -> None:
    params = seed()
    params["context"]["project"]["workflows"][0]["tasks"][0]["memory_max"] = given
    assert parse_spec(params).workflows[0].tasks[0].memory_max == size
