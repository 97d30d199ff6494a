"""The methods' parameters, checked with the standard library.

Pydantic stays where the definition model is (``create``, ``update``, ``delete`` of a tree): it
and its compiled models cost the server about 10 MiB, loaded at the first definition that
arrives. Everything else (``status``, ``run``, ``stop``, ``logs``...) is a handful of names
and numbers, checked here, so a server that is only watched stays as small as it started.

A parameter class is a keyword-only dataclass; each field's metadata holds its check (see
:func:`checked`), which returns the value or raises ValueError with what is wrong.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from typing import Any, TypeVar

from spad.definitions.names import check_name
from spad.errors import InvalidParams
from spad.store.runs import iso

P = TypeVar("P")
Check = Callable[[Any], Any]

#: SQLite integers are 64-bit: anything larger is refused at the door.
MAX_INT = 2**62
MAX_PROBLEMS = 5


def text(max_length: int = 10_000) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {_kind(value)}")
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return check


def timestamp(value: Any) -> str:
    """An ISO 8601 date or time (``2026-11-29``, ``2026-11-29T03:00:00Z``, with an offset or
    without one for UTC), as spad writes times, so that it compares with theirs as a time."""
    given = text(40)(value)
    try:
        moment = datetime.datetime.fromisoformat(given)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return iso(moment.timestamp())
    except (ValueError, OverflowError, OSError):  # OverflowError: year 1 at +14:00
        raise ValueError(f"{given!r} is not a date or time such as 2026-11-29T03:00:00Z") from None


def name(value: Any) -> str:
    return check_name(_string(value))


_string = text(200)  # longer than any name, so the name's own rule says what is wrong


def integer(low: int, high: int = MAX_INT) -> Check:
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"must be a whole number, not {_kind(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return check


def number(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"must be a number, not {_kind(value)}")
    try:
        return float(value)
    except OverflowError:  # an integer of more than 308 digits
        raise ValueError("is too large to be a number") from None


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_kind(value)}")
    return value


def one_of(*allowed: str) -> Check:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return str(value)

    return check


def one_or_more(check: Check) -> Check:
    """A value, or a list of them (``"open"`` or ``["open", "acknowledged"]``)."""

    def check_all(value: Any) -> list[Any]:
        return [check(item) for item in value] if isinstance(value, list) else [check(value)]

    return check_all


def optional(check: Check) -> Check:
    """``null`` is as good as leaving the parameter out."""
    return lambda value: None if value is None else check(value)


def checked(check: Check, default: Any = dataclasses.MISSING, alias: str | None = None) -> Any:
    """A parameter: required unless a default is given; ``alias`` is its name on the wire
    when that is not a Python name (``from``)."""
    return dataclasses.field(default=default, metadata={"check": check, "alias": alias})


def parse(kind: type[P], params: Any) -> P:
    """``kind`` from a request's params, or InvalidParams naming every bad parameter."""
    if isinstance(params, list) and not params:
        params = {}  # no params at all, sent as []
    if not isinstance(params, dict):
        raise InvalidParams("params are by name: give an object, not " + _kind(params))
    fields = {f.metadata["alias"] or f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    problems = [(key, "unknown key") for key in params if key not in fields]
    values = {}
    for key, field in fields.items():
        if key not in params:
            if field.default is dataclasses.MISSING:
                problems.append((key, "required"))
            continue
        try:
            values[field.name] = field.metadata["check"](params[key])
        except ValueError as exc:
            problems.append((key, str(exc)))
    if problems:
        lines = [f"{key}: {why}" for key, why in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            lines.append(f"... and {len(problems) - MAX_PROBLEMS} more")
        raise InvalidParams("; ".join(lines), field=problems[0][0])
    return kind(**values)


def _kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)
