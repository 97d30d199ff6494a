"""The server's side of execution: start runners, watch them, adopt them, resume what they left.

A runner is watched through a pidfd (readable when it exits, whether it is our child or one
adopted from an earlier server), so nothing polls. When a runner ends without finishing its run,
the processes it recorded are swept (each checked by identity) and the workflow is started again
as a new run, with a back-off if it keeps dying young.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from spad import executors, faults, procs, retention, states, transitions
from spad import home as home_layout
from spad.errors import Conflict, Invalid, NotFound
from spad.executors import slurm_config
from spad.executors.base import Executor
from spad.home import Home
from spad.retention import Policy
from spad.server import leftovers, slurm_reclaim
from spad.server.pidwatch import PidWatch
from spad.server.runner_start import RunnerStarter
from spad.store import definitions as defs
from spad.store import restarts, runs
from spad.store.sqlite import transaction, trouble

log = logging.getLogger("spad.runners")

#: A runner that lived at least this long was healthy: its next restart is immediate.
HEALTHY_AFTER = 30.0
MAX_BACKOFF = 300.0
#: The longest wait between two tries of a write the store refused (disk full, locked).
MAX_RETRY = 30.0


@dataclass
class _Restarts:
    count: int = 0
    last_start: float = 0.0


def restart_delay(young_deaths: int) -> float:
    """Seconds before resuming a run whose runner died ``young_deaths`` times in a row, each
    within :data:`HEALTHY_AFTER` of its start: at once the first time, then 1, 2, 4 ... 300 s."""
    # min(..., 1023): 2.0 ** 1024 overflows, after about three days of a crash loop.
    return 0.0 if young_deaths <= 1 else min(2.0 ** min(young_deaths - 2, 1023), MAX_BACKOFF)


class Runners:
    """Every run's runner: started, watched, adopted after a restart, resumed when it dies."""

    def __init__(
        self, home: Home, conn: sqlite3.Connection, url: str, policy: Policy | None = None
    ) -> None:
        self.home = home
        #: SPA_HOME as the runner gives it to its tasks.
        self._tasks_home = os.path.abspath(home.root)
        self.conn = conn
        self.url = url
        self.policy = policy or Policy()
        #: Added to every runner's (and so every task's) environment, e.g. SPA_CACERT.
        self.task_env: dict[str, str] = {}
        self._pids = PidWatch()
        self._restarts: dict[int, _Restarts] = {}
        self._pending: dict[int, asyncio.TimerHandle] = {}  # run id -> restart waiting
        self._reclaims: dict[int, asyncio.Task[None]] = {}  # run id -> its Slurm jobs settled
        self._retries: dict[int, asyncio.TimerHandle] = {}  # run id -> end handled again
        self._starter = RunnerStarter(
            home.root,
            home.logs / home_layout.RUNNERS_LOG,
            functools.partial(defs.workflow_count, conn),
            use_forkserver=not faults.NO_FORKSERVER,
        )
        self._executors: dict[str, Executor] = {}  # loaded when a dead runner left something
        #: Dead runners (pid, identity) whose sessions ``recover`` ended in one pass for all.
        self._sessions_ended: set[tuple[int, str | None]] = set()

    # -- run and stop ------------------------------------------------------------------------

    def start(
        self,
        project: str,
        workflow: sqlite3.Row,
        only_task: str | None = None,
        from_task: str | None = None,
    ) -> int:
        """A new run of ``workflow``. It takes any restart still asked of the workflow's ended
        runs, in the same transaction: the asked one's own start, or a later request's (the
        later request wins); a start that fails leaves it asked."""
        selected = self._select(project, workflow, only_task, from_task)
        with transaction(self.conn):
            restarts.taken(self.conn, workflow["id"])
            if runs.unfinished(self.conn, workflow["id"]):
                raise Conflict(
                    f"workflow {project}/{workflow['name']} is already running: stop it first "
                    f"(spa_ctl stop -p {project} -w {workflow['name']})",
                    project=project,
                    workflow=workflow["name"],
                )
            run_id = transitions.create_run(
                self.conn, workflow["id"], selected, only_task, from_task
            )
        self._prune(workflow["id"])
        self._spawn(run_id)
        self._restarts.setdefault(workflow["id"], _Restarts()).last_start = time.monotonic()
        return run_id

    def _select(
        self, project: str, workflow: sqlite3.Row, only_task: str | None, from_task: str | None
    ) -> list[str]:
        tasks = defs.tasks(self.conn, workflow["id"])
        names = [t["name"] for t in tasks]
        where = f"{project}/{workflow['name']}"
        if not tasks:
            raise Invalid(f"workflow {where} has no tasks: add some with create")
        for wanted in (only_task, from_task):
            if wanted is not None and wanted not in names:
                raise NotFound(f"task {wanted!r} does not exist in {where}")
        if only_task is not None:
            tasks = [t for t in tasks if t["name"] == only_task]
        elif from_task is not None:
            tasks = tasks[names.index(from_task) :]
        functions = {t["function"] for t in tasks}  # each looked up once, not once a task
        missing = sorted(f for f in functions if self.home.executable(f) is None)
        if missing:
            raise Invalid(
                f"cannot run {where}: no executable {', '.join(missing)} in {self.home.bin} "
                "(copy it there with 'spa_ctl file put LOCAL bin/ --exec', or chmod +x it)",
                functions=missing,
            )
        limited = [t["name"] for t in tasks if t["memory_max"] is not None]
        if limited:
            _check_memory_cgroups(where, limited)
        self._refuse_unusable_executor(where, workflow["id"])
        return [t["name"] for t in tasks]

    def _refuse_unusable_executor(self, where: str, workflow_id: int) -> None:
        if runs.uses_executor(self.conn, workflow_id, "slurm"):
            reason = slurm_config.refusal(str(self.home.root))
            if reason is not None:
                raise Invalid(f"cannot run {where} on Slurm: {reason}", executor="slurm")

    def stop(self, run: sqlite3.Row, force: bool) -> bool:
        """Stop ``run``; a restart asked before is called off: the later request wins. True
        when its runner got the stop, which goes on; False when none was left, and the run
        ended at once."""
        return self._stop(run, force, then_restart=False)

    def call_off_restart(self, run: sqlite3.Row) -> None:
        """``run`` ended and its restart is not started yet: it will not be
        (:meth:`_start_again_if_asked` reads whether it is still asked)."""
        with transaction(self.conn):
            restarts.taken(self.conn, run["workflow_id"])

    def _stop(self, run: sqlite3.Row, force: bool, then_restart: bool) -> bool:
        with transaction(self.conn):
            mode = transitions.FORCED if force else transitions.GRACEFUL
            runs.request_stop(self.conn, run["id"], mode, then_restart)
            if run["status"] == states.RUNNING:
                transitions.move_run(
                    self.conn, run["id"], run["status"], transitions.STOP_RUN, states.STOPPING
                )
        faults.crash_point(faults.STOP_RECORDED)
        if procs.is_alive(run["runner_pid"], run["runner_identity"]):
            _signal_stop(run["runner_pid"], forced=force)
            return True
        self._runner_gone(run["id"], None)  # no runner (dead, or waiting to restart)
        return False

    def restart(self, project: str, workflow: sqlite3.Row, run: sqlite3.Row | None) -> int | None:
        """``run`` (the workflow's unfinished run) is stopped gracefully and the workflow starts
        again once it ended; without one it starts now. Returns the new run id when it started
        now (also when ``run`` had no runner left to stop, and so ended at once)."""
        if run is None:
            return self.start(project, workflow)
        self._select(project, workflow, None, None)  # refused before the stop, not after
        # Kept with the run in spa.db: a restart of spad before the run ended still starts it.
        if self._stop(run, force=False, then_restart=True):
            return None  # started once the run ended
        started = [
            r["id"] for r in runs.unfinished(self.conn, workflow["id"]) if r["id"] != run["id"]
        ]
        return started[0] if started else None

    # -- runners -----------------------------------------------------------------------------

    def _spawn(self, run_id: int) -> None:
        env = dict(os.environ, SPA_URL=self.url, SPA_HOME=str(self.home.root), **self.task_env)
        try:
            pid, child = self._starter.start(run_id, env)
        except OSError as exc:
            log.warning("could not start the runner of run %s: %s", run_id, exc)
            self._runner_gone(run_id, None)  # resumed, with the crash-loop back-off
            return
        if child is not None:
            self._pids.adopt_child(child)
        self._pids.watch(pid, lambda code: self._runner_gone(run_id, code))
        faults.crash_point(faults.RUNNER_SPAWNED)
        identity = procs.identity(pid)
        try:
            with transaction(self.conn):  # its pauses for the lock are short (begin_immediate)
                recorded = runs.set_runner(self.conn, run_id, pid, identity)
            if not recorded:
                log.warning("run %s has another runner already: runner %s leaves it", run_id, pid)
        except sqlite3.OperationalError as exc:
            # The runner records itself when it claims the run; we watch it all the same.
            log.warning("could not record the runner of run %s: %s", run_id, exc)

    def _runner_gone(self, run_id: int, code: int | None, tries: int = 0) -> None:
        """Handle a runner's end; when the store refuses (disk full, locked), again later,
        until it is done: a run must not stay "running" without a runner."""
        self._retries.pop(run_id, None)
        try:
            self._after_runner(run_id, code)
        except sqlite3.OperationalError as exc:
            self._again_later(
                self._retries, run_id, f"handle the end of run {run_id}", exc, tries,
                lambda again: self._runner_gone(run_id, code, again),
            )  # fmt: skip
        except Exception:
            log.exception("could not handle the end of run %s", run_id)

    @staticmethod
    def _again_later(
        handles: dict[int, asyncio.TimerHandle],
        run_id: int,
        what: str,
        exc: sqlite3.OperationalError,
        tries: int,
        retry: Callable[[int], None],
    ) -> None:
        """The store refused ``what``: when it may take it later (locked, disk full), call
        ``retry(tries + 1)`` after a delay that doubles with each try; else say so and stop."""
        if trouble(exc) is None:
            log.exception("could not %s", what)
            return
        delay = min(2.0**tries, MAX_RETRY)
        log.warning("could not %s (%s): trying again in %g s", what, exc, delay)
        handles[run_id] = asyncio.get_running_loop().call_later(delay, retry, tries + 1)

    def _after_runner(self, run_id: int, code: int | None) -> None:
        # First, with a read only: a store that refuses writes must not keep leftovers running.
        self._end_session(runs.get(self.conn, run_id))
        with transaction(self.conn):
            run = runs.get(self.conn, run_id)
            if run is None:
                return
            alive = procs.is_alive(run["runner_pid"], run["runner_identity"])
            if not run["finished"] and not alive:
                runs.disown(self.conn, run_id)  # a runner that comes up late refuses the run
        if run["finished"]:
            self._watch_immortals(run_id)
            self._start_again_if_asked(run)
            return
        if alive:  # it claimed the run since it was found missing: adopt it
            self._adopt(run)
            return
        self._sweep(run_id)
        if run["stop_request"] or run["status"] == states.STOPPING:
            transitions.move_run(
                self.conn, run_id, run["status"], transitions.FINISH, states.STOPPED
            )
            self._cancel_restart(run_id)
            self._start_again_if_asked(run)
            return
        if run["status"] in states.WORKFLOW_ACTIVE:
            died = (
                states.terminated(-code)
                if code and code < 0
                else (states.error(code) if code else states.terminated(signal.SIGKILL))
            )
            transitions.move_run(self.conn, run_id, run["status"], transitions.CUT_SHORT, died)
        self._schedule_restart(run)

    def _start_again_if_asked(self, run: sqlite3.Row) -> None:
        """Start the workflow again when a restart was asked of ``run`` and is still to take.
        A store that refuses (busy, full) raises, for the caller to try again later with the
        restart still asked; anything else that refuses the start is said and takes it."""
        if not restarts.restart_asked(self.conn, run["id"]):
            return
        names = defs.names_of_workflow(self.conn, run["workflow_id"])
        workflow = defs.workflow_by_id(self.conn, run["workflow_id"])
        try:
            if names is None or workflow is None:
                raise NotFound("its workflow was deleted meanwhile")
            run_id = self.start(names[0], workflow)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            log.warning(
                "could not start the workflow of run %s again after its stop: %s", run["id"], exc
            )
            with transaction(self.conn):
                restarts.taken(self.conn, run["workflow_id"])
            return
        log.info("%s/%s restarted as run %s", names[0], names[1], run_id)

    def _restart_now_or_later(self, run: sqlite3.Row, tries: int = 0) -> None:
        """:meth:`_start_again_if_asked`, again after a pause while the store refuses."""
        try:
            self._start_again_if_asked(run)
        except sqlite3.OperationalError as exc:
            self._again_later(
                self._retries, run["id"], f"start the workflow of run {run['id']} again", exc,
                tries, lambda again: self._restart_now_or_later(run, again),
            )  # fmt: skip

    def _end_session(self, run: sqlite3.Row | None) -> None:
        """When the run is unfinished and its runner dead: end what the runner left in its
        session, the tasks it had no time to record included (:mod:`spad.server.leftovers`)."""
        if run is None or run["finished"]:
            return
        runner = (run["runner_pid"], run["runner_identity"])
        if runner in self._sessions_ended:
            self._sessions_ended.discard(runner)
            return
        _say_killed(
            f"the runner of run {run['id']}", leftovers.end_sessions(self._tasks_home, [runner])
        )

    def _sweep(self, run_id: int) -> None:
        """Have each executor end what a dead runner's tasks left; record them as killed. A task
        that never started (the runner died first, e.g. of a stop sent before it could handle
        one) is ``not run``. Slurm jobs are settled apart, without blocking the loop (the
        controller may be away): :mod:`spad.server.slurm_reclaim`."""
        if runs.run_uses_executor(self.conn, run_id, "slurm"):
            self._reclaim(run_id)
        for task in runs.tasks(self.conn, run_id):
            if task["executor"] == "slurm":
                continue
            if task["pid_identity"] and task["ended_at"] is None:
                self._executor(executors.name_of(task)).reclaim(task["pid"], task["pid_identity"])
            if task["status"] in states.TASK_ACTIVE:
                never_started = task["status"] == states.NEW
                transitions.move_task(
                    self.conn,
                    run_id,
                    task["name"],
                    task["status"],
                    transitions.CANCEL if never_started else transitions.SWEEP,
                    states.NOT_RUN if never_started else states.KILLED,
                )

    def _executor(self, name: str) -> Executor:
        if name not in self._executors:
            self._executors[name] = executors.load(name, str(self.home.root))
        return self._executors[name]

    # -- resuming ----------------------------------------------------------------------------

    def _schedule_restart(self, run: sqlite3.Row) -> None:
        """Start the run's workflow again; back off when its runners keep dying young."""
        record = self._restarts.setdefault(run["workflow_id"], _Restarts())
        young = time.monotonic() - record.last_start < HEALTHY_AFTER
        record.count = record.count + 1 if young else 0
        delay = restart_delay(record.count)
        if delay:
            log.warning(
                "run %s: its runners died young %d times in a row: restarting in %.0f s",
                run["id"],
                record.count,
                delay,
            )
        handle = asyncio.get_running_loop().call_later(delay, self._resume, run["id"])
        self._pending[run["id"]] = handle

    def _cancel_restart(self, run_id: int) -> None:
        handle = self._pending.pop(run_id, None)
        if handle is not None:
            handle.cancel()

    def _resume(self, old_run_id: int, tries: int = 0) -> None:
        self._pending.pop(old_run_id, None)
        try:
            run_id = self._new_run_for(old_run_id)
        except sqlite3.OperationalError as exc:
            self._again_later(
                self._pending, old_run_id, f"resume run {old_run_id}", exc, tries,
                lambda again: self._resume(old_run_id, again),
            )  # fmt: skip
            return
        except Exception:
            log.exception("could not resume run %s", old_run_id)
            return
        if run_id is not None:
            log.info("run %s resumed as run %s", old_run_id, run_id)
            self._spawn(run_id)
            self._prune_quietly(run_id)

    def _prune_quietly(self, run_id: int) -> None:
        try:
            run = runs.get(self.conn, run_id)
            if run is not None:
                self._prune(run["workflow_id"])
        except (sqlite3.Error, OSError):
            log.exception("could not delete the old runs of run %s's workflow", run_id)

    def _prune(self, workflow_id: int) -> None:
        """Keep the workflow's newest ``[retention] runs`` runs: older rows and log folders go
        (rows first: a folder without its row is only disk, a row without its folder a lie)."""
        if not runs.older_than_newest(self.conn, workflow_id, self.policy.runs):
            return  # the common case: nothing to delete, and no write lock taken to know it
        with transaction(self.conn):
            old = runs.older_than_newest(self.conn, workflow_id, self.policy.runs)
            if old:
                runs.delete(self.conn, old)
            names = defs.names_of_workflow(self.conn, workflow_id)
        if old and names is not None:
            retention.remove_log_folders(self.home.logs, *names, old)

    def _new_run_for(self, old_run_id: int) -> int | None:
        with transaction(self.conn):
            old = runs.get(self.conn, old_run_id)
            if old is None or old["finished"]:
                return None
            names = [t["name"] for t in defs.tasks(self.conn, old["workflow_id"])]
            selected = (
                [n for n in names if n == old["only_task"]]
                if old["only_task"]
                else (
                    names[names.index(old["from_task"]) :] if old["from_task"] in names else names
                )
            )
            runs.supersede(self.conn, old_run_id)
            run_id = transitions.create_run(
                self.conn,
                old["workflow_id"],
                selected,
                old["only_task"],
                old["from_task"],
                resumed_from=old_run_id,
            )
        self._restarts.setdefault(old["workflow_id"], _Restarts()).last_start = time.monotonic()
        return run_id

    def recover(self) -> None:
        """At start: adopt live runners, resume the unfinished runs whose runner is gone."""
        # Read before the dead runners' runs end below: one that ends now starts its restart
        # itself, and must not be started a second time from this list.
        asked = restarts.asked(self.conn)
        live: list[sqlite3.Row] = []
        gone: list[sqlite3.Row] = []
        for run in runs.unfinished(self.conn):
            alive = procs.is_alive(run["runner_pid"], run["runner_identity"])
            (live if alive else gone).append(run)
        dead = [(run["runner_pid"], run["runner_identity"]) for run in gone]
        # One pass over /proc for every dead runner, not one each (a power cut leaves many).
        _say_killed("runners found dead at start", leftovers.end_sessions(self._tasks_home, dead))
        self._sessions_ended.update(dead)
        for run in live:
            self._adopt(run)
        for run in gone:
            self._runner_gone(run["id"], None)
        for run in asked:  # ended while spad was down
            self._restart_now_or_later(run)
        for run_id in {t["run_id"] for t in runs.immortal_tasks(self.conn)}:
            self._watch_immortals(run_id)
        for run_id in runs.unsettled_slurm_runs(self.conn, tuple(states.TASK_ACTIVE)):
            self._reclaim(run_id)

    def _reclaim(self, run_id: int) -> None:
        """Settle the run's Slurm jobs in the background (the controller may be away)."""
        if run_id in self._reclaims:
            return
        reclaiming = asyncio.get_running_loop().create_task(
            slurm_reclaim.reclaim(self.conn, str(self.home.root), run_id)
        )
        self._reclaims[run_id] = reclaiming
        reclaiming.add_done_callback(lambda _: self._reclaims.pop(run_id, None))

    def _adopt(self, run: sqlite3.Row) -> None:
        """Watch a live runner an earlier server started; a stop it recorded and may not have
        sent (it died in between) is sent now: whoever finds a stop request carries it out."""
        log.info("adopting the runner %s of run %s", run["runner_pid"], run["id"])
        self._pids.watch(run["runner_pid"], functools.partial(self._runner_gone, run["id"]))
        if run["stop_request"]:
            _signal_stop(run["runner_pid"], forced=run["stop_request"] == transitions.FORCED)

    def _watch_immortals(self, run_id: int) -> None:
        """Tasks that survived SIGKILL: watched until they die, then recorded as killed."""
        for task in runs.tasks(self.conn, run_id):
            if not states.is_immortal(task["status"]) or task["ended_at"] is not None:
                continue
            if task["executor"] == "slurm":
                continue  # a job, not a local process: it stays immortal(JOB) (see README)
            name, status = task["name"], task["status"]

            def died(_code: int | None, name: str = name, status: str = status) -> None:
                transitions.move_task(
                    self.conn, run_id, name, status, transitions.DIED, states.KILLED
                )

            if procs.is_alive(task["pid"], task["pid_identity"]):
                self._pids.watch(task["pid"], died)
            else:
                died(None)

    def close(self) -> None:
        """Stop watching (the server is going down); runners go on by themselves."""
        self._pids.close()
        self._starter.close()
        for handle in (*self._pending.values(), *self._retries.values()):
            handle.cancel()
        for reclaiming in self._reclaims.values():
            reclaiming.cancel()  # taken up again at the next start (unsettled_slurm_runs)


def _say_killed(whose: str, killed: list[int]) -> None:
    if killed:
        log.warning(
            "%s left %d processes behind: killed them (%s)",
            whose,
            len(killed),
            " ".join(map(str, killed)),
        )


def _signal_stop(runner_pid: int, forced: bool) -> None:
    """SIGUSR1 asks the runner for a graceful stop, SIGUSR2 for a forced one; sent again, it
    changes nothing (the runner escalates on its own, per each task's stop_timeout)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(runner_pid, signal.SIGUSR2 if forced else signal.SIGUSR1)


def _check_memory_cgroups(where: str, tasks: list[str]) -> None:
    """Refuse a run whose memory limits this machine cannot enforce, saying why."""
    from spad import cgroups

    try:
        cgroups.detect()
    except cgroups.Unavailable as exc:
        raise Invalid(
            f"cannot run {where}: memory_max is set on {', '.join(tasks)}, but {exc}",
            tasks=tasks,
        ) from exc
