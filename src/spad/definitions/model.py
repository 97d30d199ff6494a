"""The definition tree in the seed's JSON format: parse and validate.

``{"context": {"project": {...}}}`` or ``{"project": {...}}``. Names identify; ids are kept.
Create and update take full entities (:class:`ProjectSpec`); delete takes the tree cut at
what to delete (:class:`ProjectRef`), where everything but names is optional and ignored.

Validated by msgspec: its structs cost a fraction of a pydantic model's memory in a server
that lives for months (bench W6), and refuse unknown keys and wrong types just as well.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct
from msgspec.structs import force_setattr

from spad.definitions.names import check_name, check_project_name
from spad.errors import InvalidParams
from spad.home import DATA

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_TASKS = 10_000
MAX_PARAMS = 1_000
MAX_SECONDS = 366 * 86_400
#: Below a mebibyte no program starts; above 2**50 the limit means nothing.
MIN_MEMORY, MAX_MEMORY = 2**20, 2**50
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGTkmgt])?\Z")
_S = TypeVar("_S", bound=Struct)
Seconds = Annotated[float, Meta(ge=0, le=MAX_SECONDS)]

#: The largest id a definition may give (and spad give): SQLite's integers are 64-bit.
MAX_ID = 2**62
Id = Annotated[int, Meta(ge=0, le=MAX_ID)]
Exec = Literal["parallel", "await"]
OnFailure = Literal["stop", "continue"]
#: Where a task runs: spad's own machine, or a job of a Slurm cluster.
ExecutorName = Literal["local", "slurm"]
MAX_SLURM_ARGS = 100


class FieldError(ValueError):
    """Values refused by checks of ours, each naming the field it was in."""

    def __init__(self, field: str, why: str, *more: tuple[str, str]) -> None:
        self.problems = [(field, why), *more]
        super().__init__("; ".join(f"{f}: {w}" for f, w in self.problems))


def name_field(field: str, value: str | None, check: Callable[[str], str] = check_name) -> None:
    """FieldError naming ``field`` unless ``value`` passes ``check`` (or is absent)."""
    if value is None:
        return
    try:
        check(value)
    except ValueError as exc:
        raise FieldError(field, str(exc)) from None


def _no_nul(field: str, value: str) -> None:
    if "\x00" in value:
        raise FieldError(field, "must not contain a NUL character")


def signal_name(value: str) -> str:
    """``"term"``, ``"SIGTERM"`` -> ``"SIGTERM"``; ValueError for what a task cannot be asked
    to stop with."""
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in signal.Signals.__members__ or name in ("SIGKILL", "SIGSTOP"):
        raise ValueError(f"{value!r} is not a signal a task can be asked to stop with (SIGTERM...)")
    return name


def memory_size(value: int | str) -> int:
    """Bytes, or a text with a binary suffix: ``"512M"``, ``"2G"`` (as systemd's MemoryMax);
    ValueError for anything else or out of range."""
    if isinstance(value, str):
        match = _SIZE.match(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a size: bytes, or a number with K, M, G or T")
        number, unit = match.groups()
        amount = float(number) * 1024 ** " KMGT".index((unit or " ").upper())
        value = int(amount) if amount <= MAX_MEMORY else MAX_MEMORY + 1  # inf has no int
    if not MIN_MEMORY <= value <= MAX_MEMORY:
        raise ValueError(f"must be between 1M ({MIN_MEMORY}) and {MAX_MEMORY} bytes")
    return value


def _refuse_repeats(field: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FieldError(field, f"the name {name!r} is given twice")
        seen.add(name)


class TaskSpec(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: Id | None = None
    name: str
    place: Annotated[int, Meta(ge=1)] | None = None
    exec: Exec = "await"
    function: str
    #: Text; ``5`` is taken as ``"5"`` (but not ``true``).
    params: Annotated[list[str | int | float], Meta(max_length=MAX_PARAMS)] = []
    retries: Annotated[int, Meta(ge=-1, le=1_000_000)] = 1
    retry_delay: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    stop_signal: str = "SIGTERM"
    stop_timeout: Annotated[float, Meta(ge=0, le=86_400)] = 6.0
    env: Annotated[dict[str, str], Meta(max_length=1_000)] = {}
    cwd: str = DATA
    timeout: Seconds = 0.0
    idle_timeout: Seconds = 0.0
    #: Bytes, or ``"512M"``; None: no limit.
    memory_max: int | str | None = None
    #: None: the workflow's executor.
    executor: ExecutorName | None = None
    #: The task's own ``sbatch`` arguments.
    slurm_args: Annotated[list[str], Meta(max_length=MAX_SLURM_ARGS)] = []

    def __post_init__(self) -> None:
        name_field("name", self.name)
        name_field("function", self.function)
        for index, arg in enumerate(self.slurm_args):
            _no_nul(f"slurm_args[{index}]", arg)
        if self.memory_max is not None:
            try:
                force_setattr(self, "memory_max", memory_size(self.memory_max))
            except ValueError as exc:
                raise FieldError("memory_max", str(exc)) from None
        texts = [str(p) if not isinstance(p, str) else p for p in self.params]
        for index, text in enumerate(texts):
            _no_nul(f"params[{index}]", text)
        force_setattr(self, "params", texts)
        try:
            force_setattr(self, "stop_signal", signal_name(self.stop_signal))
        except ValueError as exc:
            raise FieldError("stop_signal", str(exc)) from None
        for key, value in self.env.items():
            if not _ENV_NAME.match(key):
                raise FieldError("env", f"{key!r} is not an environment variable name")
            if key.startswith("SPA_"):
                raise FieldError("env", f"{key!r}: SPA_* variables are set by spad")
            _no_nul(f"env.{key}", value)
        _no_nul("cwd", self.cwd)


class WorkflowSpec(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: Id | None = None
    name: str
    #: None when not given: a new workflow then stops on failure, an existing one keeps its own.
    on_failure: OnFailure | None = None
    #: None when not given: a new workflow then runs locally, an existing one keeps its own.
    executor: ExecutorName | None = None
    tasks: Annotated[list[TaskSpec], Meta(max_length=MAX_TASKS)] = []

    def __post_init__(self) -> None:
        name_field("name", self.name)
        _refuse_repeats("tasks", (t.name for t in self.tasks))

    @property
    def policy(self) -> OnFailure:
        return self.on_failure or "stop"


class ProjectSpec(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: Id | None = None
    name: str
    workflows: Annotated[list[WorkflowSpec], Meta(max_length=MAX_TASKS)] = []

    def __post_init__(self) -> None:
        name_field("name", self.name, check_project_name)
        _refuse_repeats("workflows", (w.name for w in self.workflows))


class TaskRef(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A task to delete: its name; other fields may be there (dump's output) and are ignored."""

    id: Id | None = None
    name: str
    place: int | None = None
    exec: Exec | None = None
    function: str | None = None
    params: list[str | int | float] | None = None
    retries: int | None = None
    retry_delay: float | None = None
    stop_signal: str | None = None
    stop_timeout: float | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    timeout: float | None = None
    idle_timeout: float | None = None
    memory_max: int | str | None = None
    executor: ExecutorName | None = None
    slurm_args: list[str] | None = None

    def __post_init__(self) -> None:
        name_field("name", self.name)


class WorkflowRef(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A workflow to delete whole (no ``tasks`` or ``[]``), or whose listed tasks to delete."""

    id: Id | None = None
    name: str
    on_failure: OnFailure | None = None
    executor: ExecutorName | None = None
    tasks: Annotated[list[TaskRef], Meta(max_length=MAX_TASKS)] | None = None

    def __post_init__(self) -> None:
        name_field("name", self.name)


class ProjectRef(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    id: Id | None = None
    name: str
    workflows: Annotated[list[WorkflowRef], Meta(max_length=MAX_TASKS)] | None = None

    def __post_init__(self) -> None:
        name_field("name", self.name)


def fields_of(task: TaskSpec) -> dict[str, Any]:
    """The task's fields as a dict (what the store writes)."""
    return msgspec.structs.asdict(task)


def parse_spec(params: Any) -> ProjectSpec:
    """The tree of a ``create`` or ``update``."""
    return _parse(params, ProjectSpec)


def parse_ref(params: Any) -> ProjectRef:
    """The tree of a ``delete``."""
    return _parse(params, ProjectRef)


def _parse(params: Any, model: type[_S]) -> _S:
    prefix, project = _unwrap(params)
    return validate(model, project, prefix)


def validate(model: type[_S], data: Any, prefix: str = "") -> _S:
    """``model`` from ``data``, or InvalidParams whose message names each bad field."""
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError as exc:
        problems = describe(exc, prefix)
        message = "; ".join(f"{where}: {why}" for where, why in problems)
        raise InvalidParams(message, field=problems[0][0]) from None


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


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?\Z", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]*)`")


def describe(exc: msgspec.ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """Where each problem is and what it is: ``[("project.workflows[0].name", "must be ...")]``.
    msgspec stops at the first bad value; checks of ours may report several of one object."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    where, message = prefix + (match["path"] or ""), match["message"]
    cause = exc.__cause__
    if isinstance(cause, FieldError):
        found = [(f"{where}.{field}", why) for field, why in cause.problems]
    elif field := _FIELD.match(message):
        missing = field["what"] == "missing required"
        found = [(f"{where}.{field['field']}", "required" if missing else "unknown key")]
    else:
        found = [(where, message.replace("`", ""))]
    return [(place.lstrip(".") or "params", why) for place, why in found]
