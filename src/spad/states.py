"""Task and workflow statuses, exactly as the contract spells them.

Standard library only: the runner imports this on its hot path.
Parametrised statuses carry their number in the text: ``error(3)``, ``terminated(-15)``,
``immortal(4242)``.
"""

from __future__ import annotations

import re

#: Defined, never run.
NOT_RUN = "not run"
#: Set for every task of a run when the run starts.
NEW = "new"
#: Submitted to a scheduler (Slurm), not started by it yet.
QUEUED = "queued"
#: The process is alive (or the workflow is going on).
RUNNING = "running"
#: Set by the task itself through ``set_status``; a graceful stop leaves it alone.
WAITING = "waiting"
#: Failed and being restarted.
RERUN = "rerun"
#: Exited 0.
SUCCESS = "success0"
#: The stop signal was sent; the process has not ended yet.
STOPPING = "stopping"
#: Ended within its stop_timeout after the stop signal.
STOPPED = "stopped"
#: SIGKILL was sent to its process group after the timeout (or at once, in a hard stop).
KILLED = "killed"
#: Stopped by spad because it ran past its ``timeout`` or was silent for its ``idle_timeout``
#: (a failure, restarted per ``retries``); a workflow that stopped on it ends so too.
TIMEOUT = "timeout"

_PARAMETRISED = re.compile(r"(error|terminated|immortal)\((-?\d+)\)")

#: A task in one of these has a live process, or is about to.
TASK_ACTIVE = frozenset({NEW, QUEUED, RUNNING, WAITING, RERUN, STOPPING})
#: A workflow in one of these has a runner at work.
WORKFLOW_ACTIVE = frozenset({RUNNING, STOPPING})
#: What ``set_status`` may set.
SETTABLE = frozenset({WAITING, RUNNING})


def error(code: int) -> str:
    """A process that exited with ``code`` > 0."""
    return f"error({code})"


def terminated(signum: int) -> str:
    """A process ended by a signal we did not send."""
    return f"terminated(-{abs(signum)})"


def immortal(pid: int) -> str:
    """Still alive after SIGKILL to its process group."""
    return f"immortal({pid})"


def is_failure(status: str) -> bool:
    return status == TIMEOUT or status.startswith(("error(", "terminated("))


def is_immortal(status: str) -> bool:
    return status.startswith("immortal(")


def number(status: str) -> int | None:
    """The number inside a parametrised status, or None."""
    match = _PARAMETRISED.fullmatch(status)
    return int(match.group(2)) if match else None


def from_exit_code(code: int) -> str:
    """Status of a process that ended by itself: ``code`` as ``os.waitstatus_to_exitcode``
    gives it (negative: the signal that ended it)."""
    if code < 0:
        return terminated(-code)
    return SUCCESS if code == 0 else error(code)
