"""Names match their pattern to the end: `$` would let a final newline through."""

from __future__ import annotations

import pytest

from spad import states
from spad.alarms.config import _identifier
from spad.definitions.model import parse_spec
from spad.definitions.names import check_name
from spad.errors import InvalidParams


@pytest.mark.parametrize("bad", ["pr1\n", "pr1\r\n", "\npr1", "pr 1", ""])
def test_a_name_with_a_newline_or_space_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_name(bad)


def test_an_env_name_ending_in_a_newline_is_refused() -> None:
    task = {"name": "t", "function": "simple", "env": {"X\n": "1"}}
    with pytest.raises(InvalidParams, match="env"):
        parse_spec({"project": {"name": "p", "workflows": [{"name": "w", "tasks": [task]}]}})


def test_other_patterns_match_to_the_end() -> None:
    with pytest.raises(ValueError):
        raise ValueError(_identifier("table", "table\n")[0][1])
    assert states.number("error(3)\n") is None and states.number("error(3)") == 3


@pytest.mark.parametrize("name", ["runners.log", "alarms.log"])
def test_a_project_cannot_take_the_name_of_spad_s_own_log_files(name: str) -> None:
    """logs/PROJECT is the project's folder: a project named runners.log lost its tasks'
    output, and one named alarms.log broke the alarms' journal."""
    project = {"name": name, "workflows": [{"name": "w", "tasks": []}]}
    with pytest.raises(InvalidParams, match="a file of spad's in logs/"):
        parse_spec({"project": project})
    check_name(name)  # a workflow or a task may be called so: their folders are deeper
