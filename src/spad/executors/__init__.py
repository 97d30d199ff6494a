"""Where tasks run: one module per executor, chosen by name from the run's definition.

Standard library only. A new executor is a module defining ``EXECUTOR`` (a subclass of
:class:`spad.executors.base.Executor`) and one line here; a runner imports only the executors
its run names.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    import sqlite3

    from spad.executors.base import Executor

#: What a task runs on when its definition names no executor.
DEFAULT = "local"

#: Executor name -> the module that defines it as ``EXECUTOR``.
REGISTRY: dict[str, str] = {
    "local": "spad.executors.local",
    "slurm": "spad.executors.slurm",
}


class UnknownExecutor(LookupError):
    """A definition names an executor that is not registered."""


def load(name: str, home: str) -> Executor:
    """The executor registered as ``name``, made for ``home``."""
    module_name = REGISTRY.get(name)
    if module_name is None:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownExecutor(f"executor {name!r} is not known (known: {known})")
    # __import__ rather than importlib: one module less on the runner's path.
    module = __import__(module_name, fromlist=["EXECUTOR"])
    executor_class: type[Executor] = module.EXECUTOR
    return executor_class.for_home(home)


def name_of(task: sqlite3.Row) -> str:
    """The executor a run task's row names; the default where it names none."""
    named = task["executor"] if "executor" in task.keys() else None  # noqa: SIM118 (a Row)
    return str(named or DEFAULT)
