"""Child processes of the runner that are not tasks: whose exit status goes to whom.

The local executor reaps every child with ``waitpid(-1)`` (the runner is a subreaper); an
executor that runs commands of its own (Slurm's ``sbatch``, ``squeue``...) claims their pids
here, so that a status the local executor reaped first still reaches it. Standard library only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from collections.abc import Callable

_owners: dict[int, Callable[[int], None]] = {}


def claim(pid: int, on_exit: Callable[[int], None]) -> None:
    """``on_exit(exit code)`` once ``pid`` is reaped, by whoever reaps it."""
    _owners[pid] = on_exit


def reaped(pid: int, code: int) -> None:
    """``pid`` was reaped with ``code`` (``-N``: signal N); tell its owner, if any."""
    owner = _owners.pop(pid, None)
    if owner is not None:
        owner(code)


def reap(pids: list[int]) -> None:
    """Reap those of ``pids`` that ended (when no local executor runs ``waitpid(-1)``)."""
    for pid in pids:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue  # reaped already, and told through reaped()
        if done:
            reaped(pid, os.waitstatus_to_exitcode(status))
