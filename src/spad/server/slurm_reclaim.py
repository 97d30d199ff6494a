"""What a dead runner left on Slurm: its jobs, found by their tag, never by id alone.

As locally no task outlives its runner, a job still queued or running is cancelled and its task
recorded ``killed``; a job that ended while nobody watched gets its real exit code. The
controller may be away: the look is tried again a few times, and every command has a deadline,
so the server's loop never waits on Slurm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3

from spad import states, transitions
from spad.executors import slurm_jobs as jobs
from spad.store import runs

log = logging.getLogger("spad.slurm")

#: The statuses of a task whose current attempt is a job.
_WITH_A_JOB = frozenset({states.QUEUED, states.RUNNING, states.WAITING, states.STOPPING})
TIMEOUT = 15.0
RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 30.0


async def command(*argv: str) -> tuple[int | None, str]:
    """(exit code or None when it timed out or could not start, stdout)."""
    try:
        child = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        log.warning("cannot run %s: %s", argv[0], exc)
        return None, ""
    try:
        out, err = await asyncio.wait_for(child.communicate(), TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        return None, ""
    if child.returncode:
        log.warning("%s: %s", argv[0], err.decode(errors="replace").strip())
    return child.returncode, out.decode(errors="replace")


async def reclaim(conn: sqlite3.Connection, home: str, run_id: int) -> None:
    """Cancel the run's live jobs and record how each of its jobs ended. While the controller
    does not answer, this waits for it (a job nobody cancelled would run on unwatched); its
    tasks stay as they were meanwhile, so a server restarted in between starts over
    (:func:`spad.store.runs.unsettled_slurm_runs`)."""
    run, prefix = jobs.run_tag(home, run_id), jobs.run_prefix(home, run_id)
    tries = 0
    while True:
        code, out = await command(*jobs.squeue_command([run]))
        if code == 0:
            break
        tries += 1
        if tries == 1:
            log.warning("run %s: Slurm does not answer; its jobs are checked when it does", run_id)
        await asyncio.sleep(min(RETRY_AFTER * 2 ** (tries - 1), MAX_RETRY_AFTER))
    await _settle(conn, run_id, run, prefix, jobs.parse_squeue(out))
    for task in runs.tasks(conn, run_id):  # no job found: never submitted, or long forgotten
        if task["executor"] != "slurm" or task["status"] not in states.TASK_ACTIVE:
            continue
        never_started = task["status"] == states.NEW
        transitions.move_task(
            conn,
            run_id,
            task["name"],
            task["status"],
            transitions.CANCEL if never_started else transitions.SWEEP,
            states.NOT_RUN if never_started else states.KILLED,
        )


async def _settle(
    conn: sqlite3.Connection, run_id: int, run: str, prefix: str, rows: list[jobs.JobRow]
) -> None:
    live = [row for row in rows if jobs.outcome(row.state, row.wait_status)[0] != jobs.ENDED]
    if live:  # one command for all: only jobs that carry the run's tag are touched
        ids = [row.job for row in live]
        await command("scancel", "--signal=KILL", "--full", f"--name={run}", *ids)
        await command("scancel", f"--name={run}", *ids)
        log.info("run %s: cancelled jobs %s, their runner is gone", run_id, ", ".join(ids))
    for row in rows:
        tagged = jobs.parse_attempt_tag(row.comment, prefix)
        if tagged is None:
            continue
        task, attempt = tagged
        recorded = runs.task(conn, run_id, task)
        if recorded is None or recorded["attempt"] != attempt:
            continue  # an older attempt of the task: its end was recorded by the runner
        if recorded["status"] not in _WITH_A_JOB:
            continue  # between attempts (rerun) or ended: nothing of a job to settle
        runs.set_task_job(conn, run_id, task, row.job)
        where, code = jobs.outcome(row.state, row.wait_status)
        if where != jobs.ENDED:
            transitions.move_task(
                conn, run_id, task, recorded["status"], transitions.SWEEP, states.KILLED
            )
            continue
        code = code if code is not None else jobs.LOST
        transitions.move_task(
            conn,
            run_id,
            task,
            recorded["status"],
            transitions.SETTLE,
            states.from_exit_code(code),
            exit_code=code,
        )
