"""The chaos suite: cycles of faults against a real server, its runners and their tasks, with
the invariants of :mod:`tests.chaos.invariants` checked after every cycle.

Each cycle draws its fault and its moments from its own seed; a breach fails the suite naming
that seed, and ``--chaos-seed SEED --cycles 1`` plays the cycle again on a fresh home. Faults:
the server killed at a random moment and in the windows of ``SPAD_TEST_CRASH_AT``; a power
loss (everything of the home frozen with SIGSTOP, then SIGKILLed); runners killed, also between
starting a task and recording it (``SPAD_TEST_RECORD_DELAY``); spa.db locked by another process;
and, where the tests run as root, a full disk (a small tmpfs). The suite ends with a power cut
and fails if any process of the home is left after it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spad import faults, procs
from spad.cli.client import ServerError, Unreachable
from tests import storage
from tests.chaos import invariants
from tests.conftest import Server, home_processes, procs_with, runners_of, task, tree, wait_for

#: Workflows that never end by themselves (the only ones stopped: a stop never races an end).
ENDLESS = ("steady", "stubborn")
#: Workflows that end by themselves within a second or two.
BRIEF = ("brief", "failing")
SETTLE = 45.0


def definitions() -> dict[str, Any]:
    return tree(
        [
            {
                "name": "steady",
                "tasks": [
                    task("bg", "simple", "3600", exec="parallel"),
                    task("fg", "simple", "3600"),
                ],
            },
            {"name": "stubborn", "tasks": [task("s", "stubborn", "3600", stop_timeout=1)]},
            {"name": "brief", "tasks": [task("a", "simple", "0.3"), task("b", "simple", "0.5")]},
            {
                "name": "failing",
                "tasks": [task("f", "error", "3", "0.2", retries=1, retry_delay=0.2)],
            },
        ]
    )


class Chaos:
    def __init__(self, home: Path, kinds: tuple[str, ...]) -> None:
        self.home = home
        self.kinds = kinds
        self.server = Server(home)
        self.servers: list[Server] = []
        self.stopping: set[int] = set()
        self.records: dict[int, Any] = {}
        self.young_kills: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.resumed: set[int] = set()  # runs resumed as a newer run
        self.honoured: set[int] = set()  # stopping runs that ended stopped

    # -- the server ----------------------------------------------------------------------------

    def start(self, **env: str) -> None:
        self.server = Server(self.home, env=env)
        self.servers.append(self.server)
        self.server.start()
        self.young_kills.clear()  # a new server starts its crash-loop counts afresh

    def restart(self) -> None:
        self.kill_server()
        self.start()

    def kill_server(self) -> None:
        process = self.server.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def call(self, method: str, **params: Any) -> Any:
        """A call that the fault may refuse (busy, full, conflict) or cut (a crash point)."""
        try:
            return self.server.call(method, **params)
        except ServerError as exc:
            return exc
        except Unreachable:
            return None

    def running(self) -> list[str]:
        listing = self.server.call("list", project="pr1")["projects"][0]["workflows"]
        return [w["name"] for w in listing if w["status"] in ("running", "stopping")]

    def unfinished_run(self, workflow: str) -> int | None:
        with contextlib.closing(self.server.db()) as conn:
            row = conn.execute(
                "SELECT r.id FROM runs r JOIN workflows w ON w.id = r.workflow_id"
                " WHERE w.name = ? AND r.finished = 0",
                (workflow,),
            ).fetchone()
        return int(row[0]) if row else None

    # -- what users do between faults ----------------------------------------------------------

    def act(self, rng: random.Random) -> None:
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.7:
                self.call("run", workflow=rng.choice(ENDLESS + BRIEF))
            else:
                self.stop(rng.choice(ENDLESS), force=rng.random() < 0.3)

    def stop(self, workflow: str, force: bool = False) -> None:
        run_id = self.unfinished_run(workflow)
        if run_id is None:
            return
        reply = self.call("stop", workflow=workflow, force=force)
        if isinstance(reply, dict) or reply is None:  # accepted, or recorded before a crash
            with contextlib.closing(self.server.db()) as conn:
                row = conn.execute("SELECT stop_request FROM runs WHERE id = ?", (run_id,))
                if row.fetchone()[0]:
                    self.stopping.add(run_id)

    # -- the faults ----------------------------------------------------------------------------

    def server_kill(self, rng: random.Random) -> None:
        self.act(rng)
        time.sleep(rng.uniform(0, 0.5))  # the fault strikes at a random moment
        self.restart()

    def stop_window(self, rng: random.Random) -> None:
        self.call("run", workflow="steady")
        self.kill_server()
        self.start_crashing(faults.STOP_RECORDED)
        self.stop(rng.choice(ENDLESS), force=rng.random() < 0.3)
        self.restart()

    def spawn_window(self, rng: random.Random) -> None:
        self.kill_server()
        delay = f"{rng.uniform(0, 2):.2f}"
        self.start_crashing(faults.RUNNER_SPAWNED, SPAD_TEST_RUNNER_DELAY=delay)
        self.call("run", workflow=rng.choice(ENDLESS + BRIEF))
        self.restart()

    def start_crashing(self, point: str, **env: str) -> None:
        """A server that dies at ``point``; it may die before it serves (resuming a run)."""
        with contextlib.suppress(AssertionError):
            self.start(SPAD_TEST_CRASH_AT=point, **env)

    def power_loss(self, rng: random.Random) -> None:
        self.act(rng)
        time.sleep(rng.uniform(0, 0.5))  # the fault strikes at a random moment
        self.power_cut()
        self.start()

    def power_cut(self) -> None:
        """Every process of the home dies at once, as the machine's power goes: all frozen
        first (none sees another die, none starts another unseen), then all killed."""
        frozen: set[int] = set()
        while fresh := set(self.processes()) - frozen:  # a runner may fork until it is frozen
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            frozen |= fresh
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.server.kill_everything()  # (reaps the server, waits for what the store names)
        wait_for(lambda: not self.processes(), timeout=10, what="the power cut to end all")

    def processes(self) -> list[int]:
        """The server, its fork server, the runners, and every process of a task, recorded or
        not: the members of the runners' sessions and of the tasks' groups, and whatever was
        started with this home's SPA_HOME (the tasks of a runner that died before)."""
        runners = set(runners_of(self.home))
        found = set(self.server.processes()) | runners | set(home_processes(self.home))
        found.update(procs_with(f"spad.runner.forkserver {self.home} "))
        for members in procs.session_members(runners).values():
            found.update(members)
        groups = invariants.groups()
        for pid in list(found):
            found.update(groups.get(pid, []))
        if self.server.process is not None and self.server.process.poll() is None:
            found.add(self.server.process.pid)
        return sorted(found)

    def runner_kill(self, rng: random.Random) -> None:
        self.act(rng)
        with contextlib.closing(self.server.db()) as conn:
            live = conn.execute(
                "SELECT r.runner_pid, w.name FROM runs r JOIN workflows w ON w.id = r.workflow_id"
                " WHERE r.finished = 0 AND r.runner_pid > 0"
            ).fetchall()
        if not live:
            return
        pid, workflow = rng.choice(live)
        if pid in runners_of(self.home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.young_kills[workflow] += 1
        if max(self.young_kills.values(), default=0) >= 3:
            self.restart()  # beyond this the crash-loop back-off outlasts a cycle

    def record_window(self, rng: random.Random) -> None:
        """A runner killed between starting a task and recording it (its pid never written):
        what the task started must end all the same."""
        self.kill_server()
        self.start(SPAD_TEST_RECORD_DELAY="2")
        workflow = rng.choice(ENDLESS + BRIEF)
        reply = self.call("run", workflow=workflow)
        if isinstance(reply, dict):
            run_id = str(reply["run_id"])
            with contextlib.suppress(AssertionError):  # (brief's tasks may all have ended)
                wait_for(lambda: self.task_with_a_child(run_id), timeout=5)
            runner = self.runner_of(int(reply["run_id"]))
            if runner in runners_of(self.home):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(runner, signal.SIGKILL)
        self.restart()  # runners started from now on record at once again

    def task_with_a_child(self, run_id: str) -> bool:
        """A task process of ``run_id`` has started a process of its own."""
        mine = {
            pid
            for pid, variables in home_processes(self.home).items()
            if variables.get("SPA_RUN_ID") == run_id
        }
        return any(procs.children(pid) for pid in mine)

    def runner_of(self, run_id: int) -> int:
        with contextlib.closing(self.server.db()) as conn:
            row = conn.execute("SELECT runner_pid FROM runs WHERE id = ?", (run_id,)).fetchone()
        return int(row[0] or 0) if row else 0

    def locked_db(self, rng: random.Random) -> None:
        with storage.locked(self.home / "spa.db"):
            self.call("run", workflow=rng.choice(ENDLESS + BRIEF))  # refused: busy (2 s)
            time.sleep(rng.uniform(0, 3))  # how long the fault lasts

    def disk_full(self, rng: random.Random) -> None:
        filler = storage.fill(self.home.parent)
        try:
            self.act(rng)
            if rng.random() < 0.5:  # a runner must record something: a task ends
                self.kill_a_task(rng)
            time.sleep(rng.uniform(0, 2))  # how long the fault lasts
        finally:
            filler.unlink()

    def kill_a_task(self, rng: random.Random) -> None:
        with contextlib.closing(self.server.db()) as conn:
            pids = [
                r[0]
                for r in conn.execute(
                    "SELECT t.pid FROM run_tasks t JOIN runs r ON r.id = t.run_id"
                    " WHERE r.finished = 0 AND t.status = 'running'"
                )
            ]
        if pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(pids), signal.SIGKILL)

    # -- a cycle -------------------------------------------------------------------------------

    def cycle(self, seed: int) -> None:
        rng = random.Random(seed)
        kind = rng.choice(self.kinds)
        if self.server.process is None or self.server.process.poll() is not None:
            self.start()
        getattr(self, kind)(rng)
        if self.server.process is None or self.server.process.poll() is not None:
            self.start()
        self.counts[kind] += 1
        self.settle(seed, kind)

    def settle(self, seed: int, kind: str) -> None:
        """Wait until the invariants hold; fail with the seed when they do not in time."""
        breaches: list[str] = []

        def sound() -> bool:
            nonlocal breaches
            with contextlib.closing(self.server.db()) as conn:
                breaches = invariants.check(conn, self.home, self.stopping)
                records = invariants.finished_records(conn)
            for run_id, record in self.records.items():
                if run_id in records and records[run_id] != record:  # (or deleted by retention)
                    breaches.append(f"the record of finished run {run_id} changed")
            if not breaches:
                self.records.update(records)
                self.tally(records)
            return not breaches

        try:
            wait_for(sound, timeout=SETTLE, what="the invariants")
        except AssertionError:
            pytest.fail(
                f"chaos cycle {sum(self.counts.values())} ({kind}), seed {seed}: "
                + "; ".join(breaches[:10])
                + f" (again: pytest tests/chaos --chaos-seed {seed} --cycles 1)"
            )

    def tally(self, records: dict[int, Any]) -> None:
        """Count what the cycles did, from the runs' records (kept here: retention deletes a
        workflow's oldest runs)."""
        with contextlib.closing(self.server.db()) as conn:
            rows = conn.execute("SELECT resumed_from FROM runs WHERE resumed_from IS NOT NULL")
            self.resumed.update(row[0] for row in rows)
        self.honoured.update(run_id for run_id in self.stopping if run_id in records)

    def summary(self) -> dict[str, int]:
        return {
            "cycles": sum(self.counts.values()),
            "unfinished runs resumed": len(self.resumed),
            "stops asked": len(self.stopping),
            "stops honoured": len(self.honoured),
            "breaches": 0,
        }

    def close(self) -> list[str]:
        """Ends every process of the home, as a power cut; returns what was still there after
        it (and is killed now): a process of the home must not escape that."""
        for server in self.servers:  # all but the last are dead already: no scan each
            if server.process is not None and server.process.poll() is None:
                server.process.kill()
                server.process.wait()
        with contextlib.suppress(AssertionError):  # what is left is said below
            self.power_cut()
        left: list[str] = []

        def gone() -> bool:
            left[:] = self.left_behind()
            return not left

        with contextlib.suppress(AssertionError):
            wait_for(gone, timeout=10, what="no process of the home")
        for pid in [*home_processes(self.home), *self.processes()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left

    def left_behind(self) -> list[str]:
        """Processes of the home, seen by their environment and command line only."""
        found = [
            invariants.describe(pid, variables)
            for pid, variables in home_processes(self.home).items()
        ]
        found += [f"{pid} (runner)" for pid in runners_of(self.home)]
        found += [
            f"{pid} (fork server)"
            for pid in procs_with(f"spad.runner.forkserver {self.home} ")
            if pid not in runners_of(self.home)
        ]
        return found


KINDS = (
    "server_kill",
    "stop_window",
    "spawn_window",
    "record_window",
    "power_loss",
    "runner_kill",
    "locked_db",
)


@pytest.fixture
def chaos_seed(request: pytest.FixtureRequest) -> int:
    given = request.config.getoption("--chaos-seed")
    return int(given) if given is not None else random.SystemRandom().randrange(2**31)


def run_cycles(
    chaos: Chaos, first_seed: int, cycles: int, report: Callable[[str], None]
) -> dict[str, int]:
    report(f"chaos: {cycles} cycles from seed {first_seed} in {chaos.home}")
    chaos.start()
    chaos.server.call("create", **definitions())
    for number in range(cycles):
        chaos.cycle(first_seed + number)
        if (number + 1) % 100 == 0 and number + 1 < cycles:
            report(f"chaos: so far {chaos.summary()}")
    summary = chaos.summary()
    assert summary["stops honoured"] == len(chaos.stopping)
    report(f"chaos: {summary} by kind {dict(chaos.counts)}")
    return summary


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str], None]]:
    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n{line}", flush=True)

    yield say


def test_chaos(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    chaos_seed: int,
    report: Callable[[str], None],
) -> None:
    chaos = Chaos(tmp_path / "home", KINDS)
    try:
        summary = run_cycles(chaos, chaos_seed, request.config.getoption("--cycles"), report)
    finally:
        left = chaos.close()
    assert not left, f"processes of the home outlived the suite: {'; '.join(left)}"
    assert summary["cycles"] == request.config.getoption("--cycles")


def test_chaos_on_a_disk_that_fills_up(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    chaos_seed: int,
    report: Callable[[str], None],
) -> None:
    """The same faults and a full disk, on a small tmpfs: a fifth of the cycles."""
    if os.geteuid() != 0:
        pytest.skip("a full disk needs root to mount a small tmpfs: run the tests as root")
    cycles = max(5, request.config.getoption("--cycles") // 5)
    with storage.small_disk(tmp_path / "disk", "64m") as disk:
        home = storage.no_disk_floor(disk / "home")
        chaos = Chaos(home, (*KINDS, "disk_full", "disk_full"))
        try:
            summary = run_cycles(chaos, chaos_seed, cycles, report)
        finally:
            left = chaos.close()
    assert not left, f"processes of the home outlived the suite: {'; '.join(left)}"
    assert summary["cycles"] == cycles
