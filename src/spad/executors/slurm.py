"""Tasks as jobs of a Slurm cluster: ``sbatch`` to start, ``squeue`` on an interval to see them
run and end, ``scancel --signal=… --full`` to signal every process of a job.

Every Slurm command runs through :class:`~spad.executors.commands.Commands`: a child process
with a deadline, watched by the runner's loop, so a controller that is away delays things but
never blocks the loop. Jobs are found by their tags (:mod:`spad.executors.slurm_jobs`), and an
id is only ever acted on together with its run's tag (``scancel --name=RUN_TAG ID…``). One
``squeue`` looks at all the run's jobs; the signals of one loop turn go out as one ``scancel``
per kind of signal.

A submission that fails because the controller does not answer is not a failure: the task stays
``queued`` (its log says why) and the next look at the queue decides: a job that carries the tag
was submitted after all and is adopted; otherwise it is submitted again. So an attempt is never
submitted twice.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from spad.executors import slurm_config
from spad.executors import slurm_jobs as jobs
from spad.executors.base import Executor, Launch, TaskProcess
from spad.executors.commands import Commands, Result
from spad.executors.slurm_config import SlurmConfig
from spad.runner.timers import Timer, Timers

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from typing import Any

#: What sbatch says when the controller cannot be reached: the submission is tried again.
_UNREACHABLE = (
    "unable to contact",
    "timed out",
    "temporarily",
    "socket",
    "connection refused",
    "gave no answer",
    "cannot run",
)
#: Looks at the queue that must miss a job before it counts as lost by the controller.
LOST_AFTER = 3
#: After a signal, looks at the queue come after 10, 20, 40, 80, 160 ms (up to the interval).
QUICK_LOOK = 0.005
QUICK_LOOKS = 5
#: Seconds a cluster may take to end a job's processes after scancel (Slurm's KillWait is
#: 30 by default, but SIGKILL --full is sent first, which needs no wait).
SCHEDULER_KILL_WAIT = 5.0
#: The exit code of an attempt Slurm refused (as a local task that cannot be executed).
REFUSED = 126


class SlurmJob(TaskProcess):
    """One attempt as a batch job. ``identity`` is its attempt tag; ``job`` its id once known."""

    def __init__(self, executor: SlurmExecutor, launch: Launch, run: str, tag: str) -> None:
        self.executor = executor
        self.launch = launch
        self.identity = tag
        self.run = run
        self.tag = tag
        self.job: str | None = None
        self.queued = True
        self.ended = False
        self.submitting = False
        #: The submission's fate is unknown (the controller did not answer): look for the tag.
        self.unsure = False
        self.cancel_wanted = False
        self.misses = 0
        self.said_away = False
        self.twins: set[str] = set()
        config = executor.config
        # scancel's answer, the scheduler's ending of the job, then a few looks at the queue.
        self.kill_wait = config.command_timeout + SCHEDULER_KILL_WAIT + 3 * config.poll_interval

    def signal(self, signum: int) -> None:
        self.executor.signal(self, signum)

    def kill(self) -> None:
        self.executor.kill(self)


class SlurmExecutor(Executor):
    name = "slurm"

    @classmethod
    def for_home(cls, home: str) -> Executor:
        try:
            config = slurm_config.load(home)
        except slurm_config.ConfigError as exc:
            return cls(SlurmConfig(), refusal=str(exc))
        if config is None:
            return cls(SlurmConfig(), refusal="Slurm is not configured: no [slurm] in spad.toml")
        return cls(config)

    def __init__(self, config: SlurmConfig, refusal: str | None = None) -> None:
        self.config = config
        #: Why no job can be started here (Slurm not configured), or None.
        self.refusal = refusal
        self.commands: Commands | None = None
        self.timers: Timers | None = None
        self._jobs: list[SlurmJob] = []  # not ended yet
        self._ended: list[tuple[TaskProcess, int]] = []
        self._changed: list[TaskProcess] = []
        self._poll_timer: Timer | None = None
        self._polling = False
        self._scancels: dict[tuple[str, ...], list[SlurmJob]] = {}  # options -> jobs, this turn
        self._flush_timer: Timer | None = None
        self._quick_looks = 0

    # -- the seam ----------------------------------------------------------------------------

    def attach(self, loop: Any) -> None:
        self.timers = loop.timers
        self.commands = Commands(loop.timers, loop.watch, loop.unwatch)

    def start(self, launch: Launch) -> SlurmJob:
        if self.refusal is not None:
            raise OSError(self.refusal)
        env = launch.env
        home, run_id = env["SPA_HOME"], int(env["SPA_RUN_ID"])
        tag = jobs.attempt_tag(home, run_id, env["SPA_TASK"], int(env["SPA_ATTEMPT"]))
        os.makedirs(os.path.dirname(launch.log_path), exist_ok=True)  # slurmd writes the log there
        job = SlurmJob(self, launch, jobs.run_tag(home, run_id), tag)
        self._jobs.append(job)
        self._submit(job)
        return job

    def progress(self) -> list[TaskProcess]:
        if self.commands is not None:
            self.commands.reap()  # before anything is reported: a reaped command may add to it
        changed, self._changed = self._changed, []
        return changed

    def collect(self) -> list[tuple[TaskProcess, int]]:
        ended, self._ended = self._ended, []
        return ended

    def reclaim(self, pid: int | None, identity: str | None) -> None:
        """Cancel the live job that carries the attempt tag ``identity`` (a bounded, blocking
        call: the server settles a dead runner's jobs with :mod:`spad.server.slurm_reclaim`
        instead, which does not block its loop)."""
        run = jobs.run_of(identity or "")
        if run is None:
            return
        import subprocess  # not on the runner's path

        timeout = self.config.command_timeout
        try:
            listed = subprocess.run(
                jobs.squeue_command([run]),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            live = [
                row.job
                for row in jobs.parse_squeue(listed.stdout)
                if row.comment == identity
                and jobs.outcome(row.state, row.wait_status)[0] != jobs.ENDED
            ]
            if live:
                subprocess.run(["scancel", f"--name={run}", *live], timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return

    # -- submission --------------------------------------------------------------------------

    def _submit(self, job: SlurmJob) -> None:
        launch = job.launch
        command = jobs.sbatch_command(
            launch.argv,
            launch.cwd,
            launch.log_path,
            (job.run, job.tag),
            self.config.partition,
            self.config.sbatch_args,
            launch.executor_args,
        )
        job.submitting = True
        self._run(command, lambda result: self._submitted(job, result), launch.env)

    def _submitted(self, job: SlurmJob, result: Result) -> None:
        job.submitting = False
        job_id = jobs.parse_sbatch(result.out) if result.ok else None
        if job_id is not None:
            job.job, job.unsure = job_id, False
            self._changed.append(job)
            if job.cancel_wanted:
                self._cancel(job)
        elif result.code is None or any(w in result.why().lower() for w in _UNREACHABLE):
            job.unsure = True  # it may have been submitted: the next look decides
            self._say(job, f"spad: submission delayed, will try again: {result.why()}")
        else:
            self._say(job, f"spad: Slurm refused the job: {result.why()}")
            self._end(job, REFUSED)
            return
        self._poll_soon()

    # -- looking at the queue ----------------------------------------------------------------

    def _poll_soon(self) -> None:
        if self.timers is None:
            return
        if self._poll_timer is None and not self._polling and self._jobs:
            delay = self.config.poll_interval
            if self._quick_looks:
                self._quick_looks -= 1
                delay = min(delay, QUICK_LOOK * 2 ** (QUICK_LOOKS - self._quick_looks))
            self._poll_timer = self.timers.after(delay, self._poll)

    def _poll_now(self) -> None:
        """A signal was just delivered: look at once, then a few times quickly (a trap takes
        a moment to end its job), then on the interval again."""
        self._quick_looks = QUICK_LOOKS
        if self._polling:
            return
        if self._poll_timer is not None:
            self._poll_timer.cancel()
        self._poll()

    def _poll(self) -> None:
        self._poll_timer = None
        names = sorted({j.run for j in self._jobs if not j.submitting})
        if not names:
            self._poll_soon()
            return
        self._polling = True
        self._run(jobs.squeue_command(names), self._looked)

    def _looked(self, result: Result) -> None:
        self._polling = False
        if result.ok:
            rows: dict[str, list[jobs.JobRow]] = {}
            for row in jobs.parse_squeue(result.out):
                rows.setdefault(row.comment, []).append(row)
            for job in list(self._jobs):
                if not job.submitting:
                    self._update(job, rows.get(job.tag, []))
        else:
            for job in self._jobs:
                if job.job is None and not job.said_away:
                    job.said_away = True
                    self._say(job, f"spad: the Slurm controller does not answer: {result.why()}")
        self._poll_soon()

    def _update(self, job: SlurmJob, rows: list[jobs.JobRow]) -> None:
        if job.job is None:
            if not rows:
                if job.cancel_wanted:
                    self._end(job, -int(signal.SIGTERM))  # never submitted: nothing to cancel
                else:
                    self._submit(job)  # not submitted after all: now it is, once
                return
            job.job, job.unsure = rows[0].job, False  # submitted after all: adopt it
            self._changed.append(job)
            if job.cancel_wanted:
                self._cancel(job)
        row = next((r for r in rows if r.job == job.job), None)
        if row is None:
            job.misses += 1
            if job.misses >= LOST_AFTER:
                self._say(job, f"spad: job {job.job} vanished from the Slurm controller")
                self._end(job, jobs.LOST)
            return
        job.misses = 0
        self._cancel_twins(job, rows)
        where, code = jobs.outcome(row.state, row.wait_status)
        if where == jobs.RUNNING and job.queued:
            job.queued = False
            self._changed.append(job)
        elif where == jobs.ENDED:
            self._end(job, code if code is not None else jobs.LOST)

    def _cancel_twins(self, job: SlurmJob, rows: list[jobs.JobRow]) -> None:
        """Another live job with this attempt's tag (a controller crash can make one): nobody
        would watch it, so it is cancelled."""
        for row in rows:
            if row.job == job.job or row.job in job.twins:
                continue
            if jobs.outcome(row.state, row.wait_status)[0] != jobs.ENDED:
                job.twins.add(row.job)
                self._say(job, f"spad: job {row.job} has this attempt's tag too: cancelled")
                twin = SlurmJob(self, job.launch, job.run, job.tag)
                twin.job = row.job
                self._scancel(twin)

    def _end(self, job: SlurmJob, code: int) -> None:
        if job.ended:
            return
        job.ended = True
        if job in self._jobs:
            self._jobs.remove(job)
        self._ended.append((job, code))

    # -- signals -----------------------------------------------------------------------------

    def signal(self, job: SlurmJob, signum: int) -> None:
        """The signal to every process of a running job (without ``--full`` the batch shell
        never gets it); a job not started yet is cancelled instead. One spad still sees queued
        may have just started: Slurm's own ``--state`` filter picks the right one of the two."""
        if job.ended:
            return
        name = signal.Signals(signum).name.removeprefix("SIG")
        if job.queued:
            self._cancel(job, "--state=PENDING")
            self._scancel(job, f"--signal={name}", "--full", "--state=RUNNING")
            return
        self._scancel(job, f"--signal={name}", "--full")

    def kill(self, job: SlurmJob) -> None:
        """SIGKILL to every process of the job, and the job cancelled; it is seen gone at a
        later look at the queue (or the engine calls it immortal)."""
        if job.ended:
            return
        if job.job is None and not job.submitting:
            self._end(job, -int(signal.SIGKILL))  # nothing known to have been submitted
            return
        if not job.queued:
            self._scancel(job, "--signal=KILL", "--full")
        self._cancel(job)

    def _cancel(self, job: SlurmJob, *options: str) -> None:
        """Cancel the job, now or as soon as its id is known."""
        job.cancel_wanted = True
        if job.job is not None:
            self._scancel(job, *options)
        elif not job.submitting and not job.unsure:
            self._end(job, -int(signal.SIGTERM))

    def _scancel(self, job: SlurmJob, *options: str) -> None:
        """Gathered for the end of this loop turn: a stop of a hundred tasks is one command."""
        if job.job is None:
            return
        self._scancels.setdefault(options, []).append(job)
        if self._flush_timer is None and self.timers is not None:
            self._flush_timer = self.timers.after(0, self._flush_scancels)

    def _flush_scancels(self) -> None:
        self._flush_timer = None
        batches, self._scancels = self._scancels, {}
        for options, batch in batches.items():
            for run in sorted({job.run for job in batch}):
                chosen = [job for job in batch if job.run == run and job.job is not None]
                ids = [job.job for job in chosen if job.job is not None]
                command = ["scancel", *options, f"--name={run}", *ids]
                self._run(command, self._on_scancelled(chosen, filtered="--state" in str(options)))
        self._poll_soon()

    def _on_scancelled(self, chosen: list[SlurmJob], filtered: bool) -> Callable[[Result], None]:
        def scancelled(result: Result) -> None:
            # A --state filter that matched nothing is an error to scancel, not to spad.
            if not result.ok and not filtered:
                for job in chosen:
                    self._say(job, f"spad: scancel failed: {result.why()}")
            self._poll_now()

        return scancelled

    # -- helpers -----------------------------------------------------------------------------

    def _run(
        self,
        command: list[str],
        done: Callable[[Result], None],
        env: dict[str, str] | None = None,
    ) -> None:
        """``env``: the job's environment for sbatch (it goes with the job); spad's else."""
        if self.commands is None:
            raise OSError("the slurm executor was not attached to the runner's loop")
        self.commands.run(command, env or dict(os.environ), self.config.command_timeout, done)

    @staticmethod
    def _say(job: SlurmJob, line: str) -> None:
        """A line of spad's in the task's log (slurmd appends to the same file)."""
        fd = os.open(job.launch.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (line.rstrip() + "\n").encode())
        finally:
            os.close(fd)


EXECUTOR = SlurmExecutor
