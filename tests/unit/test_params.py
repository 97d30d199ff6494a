"""Method parameters checked without pydantic: every problem named, by its name on the wire."""

from __future__ import annotations

import pytest

from spad.errors import InvalidParams
from spad.server.methods import (
    AlarmsParams,
    LogsParams,
    RunParams,
    SignalParams,
    StopParams,
    TaskParams,
)
from spad.server.params import MAX_INT, parse


def refusal(kind: type, params: object) -> str:
    with pytest.raises(InvalidParams) as caught:
        parse(kind, params)
    return caught.value.message


def test_good_params_become_attributes() -> None:
    got = parse(RunParams, {"workflow": "wf1", "from": "t2", "project": None})
    assert (got.workflow, got.from_task, got.project, got.task) == ("wf1", "t2", None, None)


def test_defaults_apply_and_no_params_is_an_empty_object() -> None:
    assert parse(StopParams, {"workflow": "w"}).force is False
    assert parse(AlarmsParams, []).limit == 1000


@pytest.mark.parametrize(
    ("kind", "params", "said"),
    [
        (TaskParams, {}, "workflow: required"),
        (TaskParams, {"workflow": "w", "nom": 1}, "nom: unknown key"),
        (TaskParams, {"workflow": "../etc"}, "workflow: must be 1 to 100 letters"),
        (TaskParams, {"workflow": 5}, "workflow: must be a string, not a number"),
        (StopParams, {"workflow": "w", "force": 1}, "force: must be true or false"),
        (LogsParams, {"workflow": "w", "task": "t", "tail": True}, "tail: must be a whole number"),
        (LogsParams, {"workflow": "w", "task": "t", "run_id": 0}, "run_id: must be between 1"),
        (LogsParams, {"workflow": "w", "task": "t", "offset": MAX_INT + 1}, "offset: must be"),
        (AlarmsParams, {"state": ["open", "gone"]}, "state: must be one of open, acknowledged"),
        (TaskParams, ["w"], "params are by name: give an object, not an array"),
        (TaskParams, "w", "give an object, not a string"),
        (SignalParams, {"source": "a", "kind": "b", "value": 10**400}, "value: is too large"),
        (AlarmsParams, {"since": "zzz"}, "since: 'zzz' is not a date or time"),
        (AlarmsParams, {"until": "2026-13-45"}, "until: '2026-13-45' is not a date or time"),
    ],
)
def test_each_problem_is_named(kind: type, params: object, said: str) -> None:
    assert said in refusal(kind, params)


def test_every_problem_is_listed_up_to_five() -> None:
    message = refusal(TaskParams, {f"k{i}": i for i in range(7)})
    assert message.count("unknown key") == 5
    assert "... and 3 more" in message  # seven unknown keys and the missing workflow


def test_one_or_more_values() -> None:
    assert parse(AlarmsParams, {"severity": "critical"}).severity == ["critical"]
    assert parse(AlarmsParams, {"state": ["open", "cleared"]}).state == ["open", "cleared"]


def test_alarm_times_are_compared_as_times() -> None:
    """Compared as texts with spad's own times: an offset or a bare date must be made one."""
    given = parse(AlarmsParams, {"since": "2026-11-29T05:00+02:00", "until": "2026-11-30"})
    assert (given.since, given.until) == ("2026-11-29T03:00:00.000Z", "2026-11-30T00:00:00.000Z")
