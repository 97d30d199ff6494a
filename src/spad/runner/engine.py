"""The sequence of one run: background and awaited tasks, retries, stop escalation.

Standard library only. The engine records every transition in the store itself, so a run goes on
and keeps its history while the server is down. It never sleeps: the loop in
:mod:`spad.runner.main` calls back on output, process ends, signals and deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable

from spad import executors, faults, logfiles, states, transitions
from spad import home as layout
from spad.executors.base import Executor, Launch, TaskProcess
from spad.runner.timers import Timer, Timers
from spad.store import runs
from spad.transitions import CANCEL, END, GIVE_UP, LAUNCH, RETRY, START_FAILED, STARTED, STOP

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from spad.cgroups import Hierarchy, TaskCgroup
    from spad.store.sqlite import Statements

#: How long a process group may take to die after SIGKILL before it is called immortal.
KILL_WAIT = 3.0
#: Why an attempt ended, recorded with its end when the kernel killed it for memory_max.
MEMORY_LIMIT = "memory limit"
#: How often a graceful stop looks whether a waiting task is running again.
WAITING_POLL = 0.1
MAX_RETRY_DELAY = 60.0


class Task:
    """One task of the run, as copied into ``run_tasks``, and its live state.

    Plain classes here, not dataclasses: importing dataclasses costs every runner memory.
    """

    def __init__(self, row: sqlite3.Row) -> None:
        self.name: str = row["name"]
        self.exec: str = row["exec"]
        self.function: str = row["function"]
        self.params: list[str] = json.loads(row["params"])
        self.retries: int = row["retries"]
        self.retry_delay: float = row["retry_delay"]
        self.stop_signal = int(signal.Signals[row["stop_signal"]])
        self.stop_timeout: float = row["stop_timeout"]
        self.env: dict[str, str] = json.loads(row["env"])
        self.cwd: str = row["cwd"]
        self.timeout: float = row["timeout"]
        self.idle_timeout: float = row["idle_timeout"]
        self.memory_max: int | None = row["memory_max"]
        self.status: str = row["status"]
        #: Where it runs, by its registered name (see :mod:`spad.executors`).
        self.executor: str = executors.name_of(row)
        #: Its own arguments for the executor (``sbatch`` arguments, for Slurm).
        self.slurm_args: list[str] = json.loads(row["slurm_args"])
        self.attempt = 0
        self.failures = 0
        self.process: TaskProcess | None = None
        self.log: logfiles.RotatingLog | None = None
        self.stop_sent = False
        self.kill_sent = False
        self.timed_out = False
        self.cgroup: TaskCgroup | None = None
        self.last_output = 0.0  # time.time() of its latest output
        self.timers: list[Timer] = []

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


class RunInfo:
    """What a runner knows of its run besides the tasks."""

    __slots__ = ("on_failure", "project", "run_id", "status", "token", "url", "workflow")

    def __init__(
        self,
        run_id: int,
        project: str,
        workflow: str,
        on_failure: str,
        url: str,
        token: str,
        status: str = states.RUNNING,
    ) -> None:
        self.run_id = run_id
        self.project = project
        self.workflow = workflow
        self.on_failure = on_failure
        self.url = url
        self.token = token
        #: The run's status as this runner last wrote (or found) it.
        self.status = status


class Engine:
    def __init__(
        self,
        conn: Statements,
        home: str,
        info: RunInfo,
        executor_for: Callable[[str], Executor],
        timers: Timers,
        watch_output: Callable[[int, Callable[[], None]], None],
        unwatch_output: Callable[[int], None],
    ) -> None:
        self.conn = conn
        self.home = home
        self.info = info
        self.timers = timers
        self._watch_output = watch_output
        self._unwatch_output = unwatch_output
        self.tasks = [Task(row) for row in runs.tasks(conn, info.run_id)]
        #: The executors this run's tasks name, by name.
        self.executors = {name: executor_for(name) for name in {t.executor for t in self.tasks}}
        self.pending = deque(t for t in self.tasks if t.status == states.NEW)
        self.awaiting: Task | None = None
        self.active: dict[int, Task] = {}  # id(process) -> task
        self.retrying: set[Task] = set()
        self.stop_mode: str | None = None  # transitions.GRACEFUL | FORCED | FAILURE
        self.failure: str | None = None
        self.done = False
        self.finished = True
        # Tasks find spa_ctl beside this interpreter, even from a virtualenv not on PATH.
        self._path_prefix = os.path.dirname(sys.executable)
        self._base_env = self._run_env()
        self._hierarchy: Hierarchy | None = None  # found at the first task with memory_max
        self._cgroups_left: list[TaskCgroup] = []

    # -- the sequence ------------------------------------------------------------------------

    def start(self) -> None:
        self._advance()
        self._check_end()

    def _advance(self) -> None:
        """Start what the list allows now: every process, then their records (which the turn
        makes at its end, see :mod:`spad.store.turns`)."""
        started: list[tuple[Task, TaskProcess, str]] = []
        failed: tuple[Task, OSError, str] | None = None
        while failed is None and self.stop_mode is None and self.pending and self.awaiting is None:
            task = self.pending.popleft()
            if task.exec == "await":
                self.awaiting = task
            path = self._next_attempt(task)
            try:
                started.append((task, self._start(task, path), path))
            except OSError as exc:
                failed = (task, exc, path)
        for task, process, path in started:
            self._launched(task, process, path)
        if failed is not None:
            self._start_failed(*failed)

    def _launch(self, task: Task) -> None:
        path = self._next_attempt(task)
        try:
            process = self._start(task, path)
        except OSError as exc:
            self._start_failed(task, exc, path)
            return
        self._launched(task, process, path)

    def _next_attempt(self, task: Task) -> str:
        """Count the attempt about to start; its log file's path."""
        task.attempt += 1
        task.stop_sent = task.kill_sent = task.timed_out = False
        return logfiles.path_for(
            os.path.join(self.home, layout.LOGS),
            self.info.project,
            self.info.workflow,
            self.info.run_id,
            task.name,
            task.attempt,
        )

    def _start_failed(self, task: Task, exc: OSError, path: str) -> None:
        log = logfiles.RotatingLog(path)
        log.write(f"spad: cannot start {task.function}: {exc.strerror or exc}\n".encode())
        log.close()
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        status = states.error(code)
        self._move(task, START_FAILED, status, attempt=task.attempt, exit_code=code, log_path=path)
        self._after_end(task, status)

    def _launched(self, task: Task, process: TaskProcess, path: str) -> None:
        task.process = process
        self.active[id(process)] = task
        self._move(
            task,
            LAUNCH,
            states.QUEUED if process.queued else states.RUNNING,
            pid=process.pid,
            identity=process.identity,
            attempt=task.attempt,
            log_path=path,
        )
        if task.executor != executors.DEFAULT:
            runs.set_task_job(self.conn, self.info.run_id, task.name, process.job)
        if process.output is not None:  # else the executor writes the log itself
            task.log = logfiles.RotatingLog(path)
            fd = process.output
            self._watch_output(fd, lambda: self._read_output(task, fd))
        self._arm_time_limits(task)

    def _start(self, task: Task, log_path: str) -> TaskProcess:
        launch = self._launch_spec(task, log_path)
        executor = self.executors[task.executor]
        if task.memory_max is None or task.executor != executors.DEFAULT:
            return executor.start(launch)  # another executor applies memory_max itself
        hierarchy = self._memory_hierarchy()
        name = f"{self.info.run_id}.{task.name}.{task.attempt}"
        task.cgroup = hierarchy.create(name, task.memory_max)
        with hierarchy.inside(task.cgroup):
            return executor.start(launch)

    def _memory_hierarchy(self) -> Hierarchy:
        if self._hierarchy is None:
            from spad import cgroups  # only a run with a memory limit loads it

            try:
                self._hierarchy = cgroups.detect()
            except cgroups.Unavailable as exc:
                raise PermissionError(1, f"memory_max: {exc}") from exc
        return self._hierarchy

    def _memory_end(self, task: Task, code: int) -> str | None:
        """Say so when the kernel killed the task for its memory limit (then the reason the
        attempt's end records: "memory limit"); drop its cgroup."""
        group, task.cgroup = task.cgroup, None
        if group is None:
            return None
        reason = None
        if code == -signal.SIGKILL and group.oom_kills() > 0:
            reason = MEMORY_LIMIT
            note = (
                f"spad: {MEMORY_LIMIT}: {self.info.project}/{self.info.workflow}/{task.name}"
                f" attempt {task.attempt} went past memory_max ({task.memory_max} bytes);"
                " the kernel killed it\n"
            )
            if task.log is not None:
                task.log.write(note.encode())
            sys.stderr.write(note)
        group.remove()
        if os.path.isdir(group.path):  # its processes are not all gone yet
            self._cgroups_left.append(group)
        return reason

    def _run_env(self) -> dict[str, str]:
        """What every task of this run gets (built once: copying os.environ is not free)."""
        env = dict(os.environ)
        env["PATH"] = self._path_prefix + os.pathsep + env.get("PATH", os.defpath)
        env.update(
            SPA_HOME=self.home,
            SPA_PROJECT=self.info.project,
            SPA_WORKFLOW=self.info.workflow,
            SPA_RUN_ID=str(self.info.run_id),
            SPA_URL=self.info.url,
            SPA_TOKEN=self.info.token,
        )
        return env

    def _launch_spec(self, task: Task, log_path: str) -> Launch:
        env = {**self._base_env, **task.env}
        if "PATH" in task.env:
            env["PATH"] = self._path_prefix + os.pathsep + task.env["PATH"]
        env["SPA_TASK"] = task.name
        env["SPA_ATTEMPT"] = str(task.attempt)
        return Launch(
            argv=[os.path.join(self.home, layout.BIN, task.function), *task.params],
            env=env,
            cwd=os.path.join(self.home, task.cwd),
            log_path=log_path,
            executor_args=task.slurm_args,
        )

    # -- output and ends ---------------------------------------------------------------------

    def _read_output(self, task: Task, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                self._close_output(task, fd)
                return
            task.last_output = time.time()
            if task.log is not None:
                task.log.write(data)

    def _close_output(self, task: Task, fd: int) -> None:
        self._unwatch_output(fd)
        os.close(fd)
        if task.process is not None and task.process.output == fd:
            task.process.output = None

    def collect(self) -> None:
        """Record what the executors saw: jobs that got an id or left their queue, and every
        task process that ended."""
        for executor in self.executors.values():
            for process in executor.progress():
                self._progressed(process)
            for process, code in executor.collect():
                self._collected(process, code)
        self._check_end()

    def _progressed(self, process: TaskProcess) -> None:
        task = self.active.get(id(process))
        if task is None:
            return
        runs.set_task_job(self.conn, self.info.run_id, task.name, process.job)
        if task.status == states.QUEUED and not process.queued:
            self._move(task, STARTED, states.RUNNING)

    def _collected(self, process: TaskProcess, code: int) -> None:
        task = self.active.pop(id(process), None)
        if task is None:
            return
        process.cleanup()
        if process.output is not None:
            self._read_output(task, process.output)
            if process.output is not None:
                self._close_output(task, process.output)
        self._ended(task, code)

    def _ended(self, task: Task, code: int) -> None:
        task.cancel_timers()
        task.process = None
        reason = self._memory_end(task, code)
        if task.log is not None:
            task.log.close()
            task.log = None
        if task.timed_out:
            status = states.TIMEOUT
        elif task.stop_sent or task.kill_sent:
            status = states.KILLED if task.kill_sent else states.STOPPED
        else:
            status = states.from_exit_code(code)
        self._move(task, END, status, exit_code=code, reason=reason)
        self._after_end(task, status)

    def _after_end(self, task: Task, status: str) -> None:
        if states.is_failure(status) and self.stop_mode is None:
            self._failed(task, status)
            return
        if task is self.awaiting:
            self.awaiting = None
            self._advance()

    def _failed(self, task: Task, status: str) -> None:
        if task.retries == -1 or task.failures < task.retries:
            task.failures += 1
            delay = _retry_delay(task)
            self._move(task, RETRY, states.RERUN, next_attempt_at=runs.in_seconds(delay))
            self.retrying.add(task)
            task.timers.append(self.timers.after(delay, lambda: self._retry(task)))
            return
        self.failure = status
        if self.info.on_failure == "stop":
            self.stop(transitions.FAILURE)
        elif task is self.awaiting:
            self.awaiting = None
            self._advance()

    def _retry(self, task: Task) -> None:
        self.retrying.discard(task)
        if self.stop_mode is None:
            self._launch(task)
        self._check_end()

    # -- time limits -------------------------------------------------------------------------

    def _arm_time_limits(self, task: Task) -> None:
        if task.timeout > 0:
            task.timers.append(self.timers.after(task.timeout, lambda: self._time_out(task)))
        if task.idle_timeout > 0:
            task.last_output = time.time()
            task.timers.append(self.timers.after(task.idle_timeout, lambda: self._idle(task)))

    def _idle(self, task: Task) -> None:
        """At the idle deadline, and only then, look whether the task spoke since (output here,
        ``heartbeat`` through the server in the store): if so, the deadline moves on."""
        heartbeat = runs.heartbeat_at(self.conn, self.info.run_id, task.name)
        last = max(task.last_output, heartbeat)
        left = last + task.idle_timeout - time.time()
        if left > 0:
            task.timers = [t for t in task.timers if not t.cancelled]  # a task may beat for years
            task.timers.append(self.timers.after(left, lambda: self._idle(task)))
        else:
            self._time_out(task, f"no output and no heartbeat for {task.idle_timeout:g} s")

    def _time_out(self, task: Task, why: str = "") -> None:
        if task.process is None or task.stop_sent or task.kill_sent:
            return
        task.timed_out = True
        if task.log is not None:
            task.log.write(
                f"spad: {why or f'still running after {task.timeout:g} s'}: "
                "stopping it (timeout)\n".encode()
            )
        self._send_stop(task)

    # -- stopping ----------------------------------------------------------------------------

    def stop(self, mode: str) -> None:
        """``graceful``: each task gets its stop signal, SIGKILL at its stop_timeout; a waiting
        task is left alone until it runs again. ``forced``: SIGKILL at once. ``failure``: as
        graceful, after a task failed for good with ``on_failure: stop``."""
        forced = mode == transitions.FORCED
        if self.stop_mode is not None and not (forced and self.stop_mode != transitions.FORCED):
            return
        self.stop_mode = mode
        # Read before this turn writes: a read after a write commits the turn's writes first.
        waiting = set() if forced else self._waiting_names()
        self._move_run(transitions.STOP_RUN, states.STOPPING)
        for task in list(self.retrying):
            task.cancel_timers()
            self._move(task, CANCEL, states.STOPPED)
        self.retrying.clear()
        for task in list(self.active.values()):
            if forced:
                self._kill(task)
            elif task.name in waiting:
                task.status = states.WAITING
            else:
                self._send_stop(task)
        if any(t.status == states.WAITING for t in self.active.values()):
            self.timers.after(WAITING_POLL, self._poll_waiting)
        self._check_end()

    def _waiting_names(self) -> set[str]:
        return runs.waiting_tasks(self.conn, self.info.run_id)

    def _poll_waiting(self) -> None:
        if self.stop_mode == transitions.FORCED:
            return
        waiting = self._waiting_names()
        still = False
        for task in self.active.values():
            if task.status == states.WAITING:
                if task.name in waiting:
                    still = True
                else:
                    self._send_stop(task)
        if still:
            self.timers.after(WAITING_POLL, self._poll_waiting)

    def _send_stop(self, task: Task) -> None:
        if task.process is None or task.stop_sent:
            return
        task.stop_sent = True
        self._move(task, STOP, states.STOPPING)
        task.process.signal(task.stop_signal)
        task.timers.append(self.timers.after(task.stop_timeout, lambda: self._kill(task)))

    def _kill(self, task: Task) -> None:
        if task.process is None or task.kill_sent:
            return
        task.kill_sent = True
        task.cancel_timers()
        if not task.stop_sent:
            self._move(task, STOP, states.STOPPING)
        kill_step(task.process)
        wait = task.process.kill_wait or KILL_WAIT
        task.timers.append(self.timers.after(wait, lambda: self._immortal(task)))

    def _immortal(self, task: Task) -> None:
        """Still alive after SIGKILL: give it up to the server, which watches it until it dies."""
        process = task.process
        if process is None:
            return
        self.active.pop(id(process), None)
        task.process = None
        self._move(task, GIVE_UP, states.immortal(process.pid or int(process.job or 0)))
        if task is self.awaiting:
            self.awaiting = None
        self._check_end()

    def hard_stop(self, signum: int) -> None:
        """SIGTERM, SIGINT or SIGHUP to the runner: kill every task now; the run is unfinished."""
        self.finished = False
        self.failure = states.terminated(signum)
        self.stop_mode = transitions.FORCED
        for task in list(self.active.values()):
            self._kill(task)
        for task in list(self.retrying):
            task.cancel_timers()
            self._move(task, CANCEL, states.KILLED)
        self.retrying.clear()
        self._check_end()

    # -- the end -----------------------------------------------------------------------------

    def _check_end(self) -> None:
        if self.done or self.active or self.retrying:
            return
        if self.stop_mode is None and (self.pending or self.awaiting is not None):
            return
        self.done = True
        for group in self._cgroups_left:
            group.remove()
        for task in self.pending:
            self._move(task, CANCEL, states.NOT_RUN)
        if self.stop_mode in transitions.STOP_REQUESTS and self.finished:
            status = states.STOPPED
        else:
            status = self.failure or states.SUCCESS
        self._move_run(transitions.FINISH if self.finished else transitions.CUT_SHORT, status)

    def _move(self, task: Task, event: str, status: str, **details: object) -> None:
        transitions.move_task(
            self.conn, self.info.run_id, task.name, task.status, event, status, **details
        )
        task.status = status

    def _move_run(self, event: str, status: str) -> None:
        transitions.move_run(self.conn, self.info.run_id, self.info.status, event, status)
        self.info.status = status


def retry_delay(base: float, failures: int, jitter: float) -> float:
    """Delay before restart number ``failures``: ``base``, doubling each time up to a minute;
    from the second restart on, stretched by up to 10% (``jitter`` in [0, 1]) so that tasks
    failing together do not restart together."""
    # 2.0 ** 1024 overflows: a task restarted without end reaches that after 17 hours.
    delay = min(base * 2.0 ** min(failures - 1, 1023), MAX_RETRY_DELAY)
    return delay * (1 + 0.1 * jitter) if failures > 1 else delay


def _retry_delay(task: Task) -> float:
    return retry_delay(task.retry_delay, task.failures, int.from_bytes(os.urandom(2)) / 0xFFFF)


def kill_step(process: TaskProcess) -> None:
    """SIGKILL the task's processes (see :mod:`spad.faults` for the tests' ``immortal``)."""
    if not faults.NO_KILL:
        process.kill()
