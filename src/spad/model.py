"""The definition tree in the seed's JSON format: parse and validate.

``{"context": {"project": {...}}}`` or ``{"project": {...}}``. Names identify; ids are kept.
Create and update take full entities (:class:`ProjectSpec`); delete takes the tree cut at
what to delete (:class:`ProjectRef`), where everything but names is optional and ignored.
"""

from __future__ import annotations

import re
import signal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from spad.errors import InvalidParams
from spad.names import check_name

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TASKS = 10_000
_M = TypeVar("_M", bound="BaseModel")
MAX_PARAMS = 1_000


def _check_signal(value: str) -> str:
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in signal.Signals.__members__ or name in ("SIGKILL", "SIGSTOP"):
        raise ValueError(f"{value!r} is not a signal a task can be asked to stop with (SIGTERM...)")
    return name


def _number_as_text(value: Any) -> Any:
    """Params are text; ``5`` is taken as ``"5"`` (but not ``true``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Name = Annotated[str, AfterValidator(check_name)]
SignalName = Annotated[str, AfterValidator(_check_signal)]
Param = Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_no_nul)]
Text = Annotated[str, AfterValidator(_no_nul)]
Id = Annotated[int, Field(ge=0, le=2**62)]
Exec = Literal["parallel", "await"]
OnFailure = Literal["stop", "continue"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class TaskSpec(_Strict):
    id: Id | None = None
    name: Name
    place: int | None = Field(default=None, ge=1)
    exec: Exec = "await"
    function: Name
    params: list[Param] = Field(default_factory=list, max_length=MAX_PARAMS)
    retries: int = Field(default=1, ge=-1, le=1_000_000)
    retry_delay: float = Field(default=1.0, gt=0, le=3600)
    stop_signal: SignalName = "SIGTERM"
    stop_timeout: float = Field(default=6.0, ge=0, le=86_400)
    env: dict[str, Text] = Field(default_factory=dict, max_length=1_000)
    cwd: Text = "data"

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not _ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not an environment variable name")
            if key.startswith("SPA_"):
                raise ValueError(f"{key!r}: SPA_* variables are set by spad")
        return env


class WorkflowSpec(_Strict):
    id: Id | None = None
    name: Name
    on_failure: OnFailure = "stop"
    tasks: list[TaskSpec] = Field(default_factory=list, max_length=MAX_TASKS)

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, tasks: list[TaskSpec]) -> list[TaskSpec]:
        _refuse_repeats(t.name for t in tasks)
        return tasks


class ProjectSpec(_Strict):
    id: Id | None = None
    name: Name
    workflows: list[WorkflowSpec] = Field(default_factory=list, max_length=MAX_TASKS)

    @field_validator("workflows")
    @classmethod
    def _unique_workflows(cls, workflows: list[WorkflowSpec]) -> list[WorkflowSpec]:
        _refuse_repeats(w.name for w in workflows)
        return workflows


class TaskRef(_Strict):
    """A task to delete: its name; other fields may be there (dump's output) and are ignored."""

    id: Id | None = None
    name: Name
    place: int | None = None
    exec: Exec | None = None
    function: str | None = None
    params: list[Param] | None = None
    retries: int | None = None
    retry_delay: float | None = None
    stop_signal: str | None = None
    stop_timeout: float | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None


class WorkflowRef(_Strict):
    """A workflow to delete whole (no ``tasks`` or ``[]``), or whose listed tasks to delete."""

    id: Id | None = None
    name: Name
    on_failure: OnFailure | None = None
    tasks: list[TaskRef] | None = Field(default=None, max_length=MAX_TASKS)


class ProjectRef(_Strict):
    id: Id | None = None
    name: Name
    workflows: list[WorkflowRef] | None = Field(default=None, max_length=MAX_TASKS)


def _refuse_repeats(names: Any) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"the name {name!r} is given twice")
        seen.add(name)


def parse_spec(params: Any) -> ProjectSpec:
    """The tree of a ``create`` or ``update``."""
    return _parse(params, ProjectSpec)


def parse_ref(params: Any) -> ProjectRef:
    """The tree of a ``delete``."""
    return _parse(params, ProjectRef)


def _parse(params: Any, model: type[_M]) -> _M:
    prefix, project = _unwrap(params)
    return validate(model, project, prefix)


def validate(model: type[_M], data: Any, prefix: str = "") -> _M:
    """``model`` from ``data``, or InvalidParams whose message names each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidParams(describe(exc, prefix), field=_first_field(exc, prefix)) from None


def _unwrap(params: Any) -> tuple[str, Any]:
    """Find the project inside ``{"context": {"project": ...}}`` or ``{"project": ...}``."""
    if not isinstance(params, dict):
        raise InvalidParams('params must be the definition tree: {"context": {"project": {...}}}')
    prefix = ""
    if "context" in params:
        _only_key(params, "context", "")
        params = params["context"]
        prefix = "context."
        if not isinstance(params, dict):
            raise InvalidParams('context must be an object: {"project": {...}}', field="context")
    if "project" not in params:
        raise InvalidParams(
            f'{prefix or "params"}: the definition tree needs "project": {{"name": ...}}',
            field=prefix + "project",
        )
    _only_key(params, "project", prefix)
    if not isinstance(params["project"], dict):
        raise InvalidParams(
            f"{prefix}project must be an object with a name, not a "
            f"{type(params['project']).__name__}",
            field=prefix + "project",
        )
    return prefix + "project", params["project"]


def _only_key(mapping: dict[str, Any], key: str, prefix: str) -> None:
    extra = sorted(k for k in mapping if k != key)
    if extra:
        raise InvalidParams(
            f"{prefix}{extra[0]}: unknown key (the tree holds only {key!r})",
            field=prefix + extra[0],
        )


def _location(loc: tuple[int | str, ...], prefix: str) -> str:
    text = prefix
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _first_field(exc: ValidationError, prefix: str) -> str:
    return _location(exc.errors()[0]["loc"], prefix).lstrip(".")


def describe(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the field: ``project.workflows[0].name: ...``."""
    lines = []
    for err in exc.errors()[:5]:
        where = _location(err["loc"], prefix).lstrip(".") or "params"
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key")
        elif err["type"] == "missing":
            lines.append(f"{where}: required")
        else:
            message = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}")
    if exc.error_count() > 5:
        lines.append(f"... and {exc.error_count() - 5} more")
    return "; ".join(lines)
