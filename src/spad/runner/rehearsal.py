"""The fork server's rehearsal: real runs, carried out by the runner's own code in a scratch
home, before the fork server forks any runner.

CPython 3.11 writes into what it runs the first time: its method cache, the keyword names of a
built-in function, the specialised byte-code of a function, the first calls into SQLite and
ctypes. In a runner forked from the fork server, each such first write copies a page that the
runners would otherwise share. Done once here, before the fork server freezes its objects,
they are done for every runner, the way a web server that preloads its application warms it
up before it forks its workers: 2.1 instead of 2.3 MiB a runner (bench/runner_pages.py,
bench/RESULTS.md "W8, sixth pass"). Where many workflows are defined it carries out
:data:`ROUNDS` runs one after the other, so that what CPython writes only at a function's
eighth call or later is written here too: 1.9 MiB a runner ("W8, seventh pass").

Each run is of a workflow of two ``sleep`` tasks, one in the background and one awaited,
started and then stopped gracefully (a stop asked at once, as ``spa_ctl stop`` does, which the
runner carries out once its tasks are started): both halves of a runner's life in W8. It goes
through :func:`spad.runner.main.carry_out`, its engine and the local executor, as any run
does, so the rehearsal follows the runner's code as it changes. One run takes about 18 ms, 16
about 80, at each start of a fork server (the server waits for it at its first run). One that
fails is said in runners.log and skipped: runners then start as they would without it. Its
tasks die with the fork server (their parent-death signal); a fork server killed during its
rehearsal leaves the scratch folder (``spad-rehearsal-*``, a few KiB) behind.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time

from spad import faults, states, transitions
from spad import home as layout
from spad.runner import main as runner_main
from spad.runner.signals import GRACEFUL, SignalInbox
from spad.store import definitions, runs
from spad.store.sqlite import connect, migrate, transaction

#: The tasks' program, and its arguments: it runs until the rehearsal's stop ends it (at the
#: latest when it ends by itself: the fork server's start waits for the rehearsal's run).
PROGRAM, PARAMS = "/bin/sleep", ["2"]
#: The rehearsal's tasks: one in the background, one awaited (the W8 workflow's two kinds).
TASKS = (("background", "parallel"), ("awaited", "await"))
#: A task is given this long, as a task with a ``timeout`` is (the timers run too).
TIMEOUT = 10.0
#: What each of the rehearsal's runs ends as.
ENDED = states.STOPPED
#: Runs carried out one after the other. CPython 3.11 rewrites a function's byte-code into its
#: quickened form at the function's eighth call, then specialises each instruction after some
#: more: a function a runner calls once or twice a run settles only after several runs. 1, 2, 4,
#: 8, 16 and 32 rounds left a runner 2,066, 2,055, 2,011, 1,968, 1,928 and 1,933 KiB private
#: (bench/runner_pages.py's "idle", 100 workflows, two runs each), for 18, 47 (8) and 80 (16)
#: ms of the fork server's start.
ROUNDS = 16
#: Workflows defined from which the fork server rehearses :data:`ROUNDS` runs rather than one.
MANY_WORKFLOWS = 10
#: Seconds after which no further round is started. The server waits for the fork server's
#: first answer (``runner_start.ANSWER_TIMEOUT``, 5 s): on a loaded machine, where a round
#: takes far longer than its 4 ms, fewer rounds are rehearsed rather than that wait run out.
BUDGET = 0.5


def rounds_for(workflows: int) -> int:
    """Runs to rehearse where ``workflows`` are defined. The rounds after the first cost each
    fork server's start (which the server waits for at its first run) about 4 ms each, and save
    every runner forked after them about 9 KiB each: worth it where many runners will be
    forked, not where a few will (W2's one workflow of 300 tasks would wait 60 ms longer to
    start, for 140 KiB)."""
    return ROUNDS if workflows >= MANY_WORKFLOWS else 1


def rehearse(temporary: str, rounds: int = 1) -> tuple[str, int]:
    """Carry out the rehearsal, up to ``rounds`` runs one after the other (none started after
    :data:`BUDGET`), in a new folder inside ``temporary``; returns the status they ended with
    (:data:`ENDED`) or why one did not, and how many were carried out. The folder is
    removed."""
    if faults.RUNNER_DELAY or faults.RECORD_DELAY:
        return "skipped: a runner delay is injected, and the fork server would wait it out", 0
    if not os.access(PROGRAM, os.X_OK):
        return f"skipped: {PROGRAM} cannot be run here", 0
    scratch = os.path.join(temporary, f"spad-rehearsal-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.mkdir(scratch, 0o700)
    except OSError as exc:
        return f"skipped: cannot make {scratch}: {exc.strerror or exc}", 0
    done: list[int] = []
    try:
        began = time.monotonic()
        for run_id in _prepare(scratch, rounds):
            if done and time.monotonic() - began > BUDGET:
                break
            _carry_out(scratch, run_id)
            done.append(run_id)
            # The fork server runs without the collector: a run's cycles (its engine, its
            # store's connection) freed now, or each round's would pile up in the C heap.
            gc.collect(0)  # all it made is in the youngest generation: nothing collects here
        ended = next((said for said in _statuses(scratch, done) if said != ENDED), ENDED)
        return ended, len(done)
    except Exception as exc:  # a rehearsal only warms up: runners start all the same
        return f"failed: {type(exc).__name__}: {exc}", len(done)
    finally:
        _reap()
        with contextlib.suppress(OSError):  # a folder left in the temporary one is harmless
            _remove(scratch)


def _prepare(scratch: str, rounds: int) -> list[int]:
    """A home with a workflow of :data:`TASKS` and ``rounds`` new runs of it; their ids."""
    for folder in (layout.BIN, layout.DATA, layout.LOGS):
        os.mkdir(os.path.join(scratch, folder))
    os.symlink(PROGRAM, os.path.join(scratch, layout.BIN, "sleep"))
    with open(os.path.join(scratch, layout.TOKEN), "w") as token:
        token.write("rehearsal" * 4)
    conn = connect(os.path.join(scratch, layout.DB))
    try:
        migrate(conn)
        with transaction(conn):
            project = definitions.insert_project(conn, "rehearsal", 1)
            workflow = definitions.insert_workflow(conn, project, "rehearsal", 1, "stop")
            for place, (name, kind) in enumerate(TASKS, start=1):
                definitions.insert_task(conn, workflow, _task(place, name, kind), place)
            names = [name for name, _ in TASKS]
            return [transitions.create_run(conn, workflow, names) for _ in range(rounds)]
    finally:
        conn.close()


def _carry_out(scratch: str, run_id: int) -> None:
    """The run, carried out by the runner's code and stopped once its tasks are started."""
    inbox = SignalInbox()
    os.kill(os.getpid(), GRACEFUL)  # queued in the inbox: the stop the server would send
    try:
        runner_main.carry_out(scratch, run_id, inbox)
    finally:
        inbox.close()


def _task(ext_id: int, name: str, kind: str) -> dict[str, object]:
    return {
        "id": ext_id,
        "name": name,
        "exec": kind,
        "function": "sleep",
        "params": PARAMS,
        "retries": 0,
        "retry_delay": 1.0,
        "stop_signal": "SIGTERM",
        "stop_timeout": 1.0,
        "env": {},
        "cwd": layout.DATA,
        "timeout": TIMEOUT,
        "idle_timeout": 0.0,
        "memory_max": None,
    }


def _statuses(scratch: str, run_ids: list[int]) -> list[str]:
    """What each run ended as."""
    conn = connect(os.path.join(scratch, layout.DB))
    try:
        found = [runs.get(conn, run_id) for run_id in run_ids]
    finally:
        conn.close()
    return [str(row["status"]) if row is not None else "no run" for row in found]


def _reap() -> None:
    """Wait for the rehearsal's tasks: a run that failed halfway had them killed, not reaped,
    and no other child exists yet."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _remove(folder: str) -> None:
    """``rm -r``, without loading shutil into the fork server for it."""
    for parent, folders, files in os.walk(folder, topdown=False):
        for name in files:
            os.unlink(os.path.join(parent, name))
        for name in folders:
            path = os.path.join(parent, name)
            if os.path.islink(path):  # never followed into
                os.unlink(path)
            else:
                os.rmdir(path)
    os.rmdir(folder)


if __name__ == "__main__":  # python -m spad.runner.rehearsal [FOLDER]: what a rehearsal does
    print(rehearse(sys.argv[1] if len(sys.argv) > 1 else "/tmp")[0])
