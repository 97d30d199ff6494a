"""Slurm's command lines and what they print, as pure functions: the tag that names a job, the
``sbatch`` command, the ``squeue`` query, its parsing, and a job state as a spad outcome.

Standard library only (the runner imports it). Every job is tagged: its ``--job-name`` names
its home and run (what ``squeue --name`` and ``scancel --name`` filter on, so one command looks
at or signals all of a run's jobs), its ``--comment`` adds the task and the attempt. spad finds
its jobs by these tags and never acts on a job id alone (``scancel --name=RUN_TAG ID…``),
because Slurm hands an id out again after a controller crash.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import zlib

#: Columns asked of ``squeue -O``: each ends with ``|``; the comment is last (it may hold one).
SQUEUE_FORMAT = "JobID:|,Name:|,State:|,exit_code:|,Comment:"

#: Still waiting for the scheduler.
QUEUED_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
)
#: Its processes run (or are being cleaned up: the end is not final yet).
RUNNING_STATES = frozenset(
    {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"}
)
#: Ended, and Slurm's exit status says how.
EXITED_STATES = frozenset({"COMPLETED", "FAILED"})
#: Ended by the scheduler or the machine, not by the task's own exit.
ENDED_BY_SCHEDULER = {
    "CANCELLED": signal.SIGTERM,
    "TIMEOUT": signal.SIGTERM,
    "DEADLINE": signal.SIGTERM,
    "PREEMPTED": signal.SIGTERM,
    "OUT_OF_MEMORY": signal.SIGKILL,
    "NODE_FAIL": signal.SIGKILL,
    "BOOT_FAIL": signal.SIGKILL,
    "REVOKED": signal.SIGKILL,
    "SPECIAL_EXIT": signal.SIGKILL,
}
_ATTEMPT_TAG = re.compile(r"^(spad-[0-9a-f]{8}-r\d+)-a\d+-.")
#: The exit code of a job that vanished from the controller (lost in a crash).
LOST = -int(signal.SIGKILL)


def home_key(home: str) -> str:
    """Eight hex digits naming a home, so two homes sharing a cluster never take each
    other's jobs."""
    return f"{zlib.crc32(os.path.abspath(home).encode()):08x}"


def run_tag(home: str, run_id: int) -> str:
    """``spad-<home>-r<run>``: the name of every job of one run."""
    return f"spad-{home_key(home)}-r{run_id}"


def run_prefix(home: str, run_id: int) -> str:
    """The start of every attempt tag of one run."""
    return run_tag(home, run_id) + "-"


def attempt_tag(home: str, run_id: int, task: str, attempt: int) -> str:
    """``spad-<home>-r<run>-a<attempt>-<task>``, the job's comment: the task last, as it may
    hold ``-``."""
    return f"{run_prefix(home, run_id)}a{attempt}-{task}"


def run_of(tag: str) -> str | None:
    """The run tag an attempt tag starts with, or None when ``tag`` is not one."""
    match = _ATTEMPT_TAG.match(tag)
    return match.group(1) if match else None


def parse_attempt_tag(tag: str, prefix: str) -> tuple[str, int] | None:
    """(task, attempt) of an attempt tag that starts with ``prefix``, else None."""
    if not tag.startswith(prefix):
        return None
    attempt, _, task = tag[len(prefix) :].partition("-")
    if not attempt.startswith("a") or not attempt[1:].isdigit() or not task:
        return None
    return task, int(attempt[1:])


def sbatch_command(
    argv: list[str],
    cwd: str,
    log_path: str,
    tags: tuple[str, str],
    partition: str | None,
    sbatch_args: list[str],
    task_args: list[str],
) -> list[str]:
    """``sbatch --parsable`` of a job that *is* the task: the batch shell ``exec``s it, so the
    stop signal reaches the task itself, and its exit status is the job's. The environment
    goes with the job (``--export=ALL``, sbatch's default, said here to be sure). ``tags``:
    the run's and the attempt's."""
    command = [
        "sbatch",
        "--parsable",
        f"--job-name={tags[0]}",
        f"--comment={tags[1]}",
        f"--output={log_path}",
        "--open-mode=append",
        f"--chdir={cwd}",
        "--export=ALL",
    ]
    if partition:
        command.append(f"--partition={partition}")
    command += sbatch_args
    command += task_args  # last: a task's own arguments win over the configured ones
    command.append("--wrap=exec " + shlex.join(argv))
    return command


def parse_sbatch(stdout: str) -> str | None:
    """The job id ``sbatch --parsable`` printed (``ID`` or ``ID;CLUSTER``), or None."""
    first = stdout.strip().split(";", 1)[0]
    return first if first.isdigit() else None


def squeue_command(names: list[str]) -> list[str]:
    """Every job, ended ones too while the controller keeps them, with one of these names
    (run tags)."""
    names_option = f"--name={','.join(names)}"
    return ["squeue", "--noheader", "--states=all", names_option, "-O", SQUEUE_FORMAT]


class JobRow:
    """One line of :func:`squeue_command`'s output."""

    __slots__ = ("comment", "job", "name", "state", "wait_status")

    def __init__(
        self, job: str, name: str, state: str, wait_status: int | None, comment: str
    ) -> None:
        self.job = job
        self.name = name
        self.state = state
        self.wait_status = wait_status
        self.comment = comment

    def __repr__(self) -> str:
        return f"JobRow({self.job!r}, {self.comment!r}, {self.state!r}, {self.wait_status!r})"


def parse_squeue(stdout: str) -> list[JobRow]:
    rows = []
    for line in stdout.splitlines():
        parts = line.split("|", 4)
        if len(parts) < 5 or not parts[0].strip().isdigit():
            continue
        job, name, state, status, comment = (p.strip() for p in parts)
        wait_status = int(status) if status.isdigit() else None
        rows.append(JobRow(job, name, state.split()[0], wait_status, comment))
    return rows


QUEUED, RUNNING, ENDED = "queued", "running", "ended"


def outcome(state: str, wait_status: int | None) -> tuple[str, int | None]:
    """``(QUEUED | RUNNING | ENDED, exit code)`` of a job in ``state``. The exit code is as
    ``os.waitstatus_to_exitcode`` gives it (``-N``: signal N), from Slurm's raw status, which
    ``scontrol`` shows as ``ExitCode=code:signal``. A job the scheduler ended (cancelled, out
    of time, node lost) without a signal of its own counts as ended by the signal that
    Slurm's own ending would have sent."""
    if state in QUEUED_STATES:
        return QUEUED, None
    if state in RUNNING_STATES:
        return RUNNING, None
    if state in EXITED_STATES:
        try:
            return ENDED, os.waitstatus_to_exitcode(wait_status or 0)
        except ValueError:  # not an exit status (a stopped process): Slurm's own oddity
            return ENDED, LOST
    by_signal = (wait_status or 0) & 0x7F
    return ENDED, -(by_signal or int(ENDED_BY_SCHEDULER.get(state, signal.SIGKILL)))
