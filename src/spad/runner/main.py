"""``python -m spad.runner HOME RUN_ID``: the process that carries out one run.

Started by the server in a session of its own, so the server can die and come back without
touching it. A child subreaper, so a task's orphaned children are reaped (and killed) here.
"""

from __future__ import annotations

import os
import selectors
import sys
import time
from collections.abc import Callable

from spad import executors, faults, procs, transitions
from spad import home as layout
from spad.numerals import ascii_int
from spad.runner.engine import Engine, RunInfo
from spad.runner.signals import FORCED, GRACEFUL, HARD, SignalInbox
from spad.runner.timers import Timers
from spad.store import runs
from spad.store.sqlite import transaction
from spad.store.turns import RunnerStore, StoreFull, patiently, say

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from spad.store.sqlite import Statements

#: The exit code of a runner whose store's disk is full: the server resumes its run (EX_TEMPFAIL).
EXIT_STORE_FULL = 75


def load_info(home: str, conn: Statements, run_id: int) -> tuple[RunInfo, str | None]:
    """The run as the engine needs it, and the stop already asked of it (if any)."""
    row = runs.with_names(conn, run_id)
    if row is None:
        raise SystemExit(f"spad runner: run {run_id} does not exist")
    info = RunInfo(
        run_id=run_id,
        project=row["project"],
        workflow=row["workflow"],
        on_failure=row["on_failure"],
        url=os.environ.get("SPA_URL", "http://127.0.0.1:7070"),
        token=_read(os.path.join(home, layout.TOKEN)),
        status=row["status"],
    )
    return info, row["stop_request"]


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


class Loop:
    """Select on the signal pipe, the tasks' output and what executors ask to be woken by; run
    deadlines; collect ended tasks after every wake."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.timers = Timers()

    def watch(self, fd: int, callback: Callable[[], None]) -> None:
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def unwatch(self, fd: int) -> None:
        self.selector.unregister(fd)

    def run(self, engine: Engine, inbox: SignalInbox, store: RunnerStore) -> None:
        """Each turn's transitions commit together, before the loop waits again: one commit
        where a task ends and the next starts, one for a hundred tasks started at once. The
        store is closed once no statement has needed it for a while (see :class:`RunnerStore`).
        """
        self.watch(inbox.fileno(), lambda: self._on_signals(engine, inbox))
        for executor in engine.executors.values():
            executor.attach(self)
            fd = executor.wakeup_fd()
            if fd is not None:
                self.watch(fd, _nothing)  # the wake is all it asks: collect() follows
            interval = executor.poll_interval()
            if interval is not None:
                self._every(interval, engine)
        with store.turn():
            engine.start()
        while not engine.done:
            timeout = self.timers.timeout()
            closing = store.close_in()
            if closing == 0:  # unused for long enough, even while descriptors stay ready
                store.close()
            closes_first = (
                closing is not None and closing > 0 and (timeout is None or closing < timeout)
            )
            ready = self.selector.select(closing if closes_first else timeout)
            if not ready and closes_first:
                continue  # nothing happened: the next round closes the store
            with store.turn():
                for key, _ in ready:
                    key.data()
                self.timers.run_due()
                engine.collect()

    def _every(self, interval: float, engine: Engine) -> None:
        """Wake the loop every ``interval`` seconds while the run goes on."""
        if not engine.done:
            self.timers.after(interval, lambda: self._every(interval, engine))

    @staticmethod
    def _on_signals(engine: Engine, inbox: SignalInbox) -> None:
        for signum in inbox.drain():
            if signum == GRACEFUL:
                engine.stop(transitions.GRACEFUL)
            elif signum == FORCED:
                engine.stop(transitions.FORCED)
            elif signum in HARD:
                engine.hard_stop(signum)


def _nothing() -> None:
    """A wake whose only purpose is the collect() after it."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run_id = ascii_int(args[1]) if len(args) == 2 else None
    if run_id is None:
        print("usage: python -m spad.runner HOME RUN_ID", file=sys.stderr)
        return 2
    home = os.path.abspath(args[0])
    inbox = SignalInbox()  # first: a stop sent while we start is queued, not fatal
    procs.set_name(b"spad-runner")  # what ps -o comm and top show, forked or not
    procs.become_subreaper()
    try:
        return carry_out(home, run_id, inbox)
    except StoreFull as exc:
        say(
            f"run {run_id}: spa.db cannot be written ({exc}): its tasks end with this runner; "
            "spad starts the workflow again once it can write"
        )
        return EXIT_STORE_FULL


def carry_out(home: str, run_id: int, inbox: SignalInbox) -> int:
    if faults.RUNNER_DELAY:
        time.sleep(faults.RUNNER_DELAY)
    # A runner reads and writes a few rows of its own run: a small page cache is plenty, and
    # each runner's cache is private memory (a thousand runners, a thousand caches).
    store = RunnerStore(os.path.join(home, layout.DB), cache_kib=128)
    pid = os.getpid()
    identity = procs.identity(pid)

    def claim() -> bool:
        with transaction(store.connection()) as conn:  # short pauses for the lock
            return runs.claim(conn, run_id, pid, identity)

    if not patiently(claim):
        say(f"run {run_id} is finished, superseded or another runner's: leaving it alone")
        return 0
    loop = Loop()
    info, stop_request = load_info(home, store, run_id)
    engine = Engine(
        store,
        home,
        info,
        lambda name: executors.load(name, home),
        loop.timers,
        loop.watch,
        loop.unwatch,
    )
    try:
        if stop_request:
            with store.turn():
                engine.stop(stop_request)
        loop.run(engine, inbox, store)
    finally:
        for executor in engine.executors.values():
            executor.close()  # what the tasks left ends with the runner, even on a full disk
    return 0
