"""The fork server's rehearsal: one real run, carried out by the runner's own code in a scratch
home, before the fork server forks any runner.

CPython 3.11 writes into what it runs the first time: its method cache, the keyword names of a
built-in function, the specialised byte-code of a function, the first calls into SQLite and
ctypes. In a runner forked from the fork server, each such first write copies a page that the
runners would otherwise share. Done once here, before the fork server freezes its objects,
they are done for every runner, the way a web server that preloads its application warms it
up before it forks its workers: 2.1 instead of 2.3 MiB a runner (bench/runner_pages.py,
bench/RESULTS.md "W8, sixth pass").

The run is a workflow of two ``sleep`` tasks, one in the background and one awaited, started
and then stopped gracefully (a stop asked at once, as ``spa_ctl stop`` does, which the runner
carries out once its tasks are started): both halves of a runner's life in W8. It goes
through :func:`spad.runner.main.carry_out`, its engine and the local executor, as any run
does, so the rehearsal follows the runner's code as it changes. It takes about 17 ms, once per
fork server. One that fails is said in runners.log and skipped: runners then start as they
would without it. Its tasks die with the fork server (their parent-death signal); a fork server
killed during its rehearsal leaves the scratch folder (``spad-rehearsal-*``, a few KiB) behind.
"""

from __future__ import annotations

import contextlib
import os
import sys

from spad import faults, states, transitions
from spad import home as layout
from spad.runner import main as runner_main
from spad.runner.signals import GRACEFUL, SignalInbox
from spad.store import definitions, runs
from spad.store.sqlite import connect, migrate, transaction

#: The tasks' program, and its arguments: it runs until the rehearsal's stop ends it (at the
#: latest when it ends by itself: the fork server's start waits for the rehearsal).
PROGRAM, PARAMS = "/bin/sleep", ["2"]
#: The rehearsal's tasks: one in the background, one awaited (the W8 workflow's two kinds).
TASKS = (("background", "parallel"), ("awaited", "await"))
#: A task is given this long, as a task with a ``timeout`` is (the timers run too).
TIMEOUT = 10.0
#: What the rehearsal's run ends as.
ENDED = states.STOPPED


def rehearse(temporary: str) -> str:
    """Carry out the rehearsal in a new folder inside ``temporary``; returns the status its run
    ended with (:data:`ENDED`), or why there was none. The folder is removed."""
    if faults.RUNNER_DELAY or faults.RECORD_DELAY:
        return "skipped: a runner delay is injected, and the fork server would wait it out"
    if not os.access(PROGRAM, os.X_OK):
        return f"skipped: {PROGRAM} cannot be run here"
    scratch = os.path.join(temporary, f"spad-rehearsal-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.mkdir(scratch, 0o700)
    except OSError as exc:
        return f"skipped: cannot make {scratch}: {exc.strerror or exc}"
    try:
        run_id = _prepare(scratch)
        inbox = SignalInbox()
        os.kill(os.getpid(), GRACEFUL)  # queued in the inbox: the stop the server would send
        try:
            runner_main.carry_out(scratch, run_id, inbox)
        finally:
            inbox.close()
        return _status(scratch, run_id)
    except Exception as exc:  # a rehearsal only warms up: runners start all the same
        return f"failed: {type(exc).__name__}: {exc}"
    finally:
        _reap()
        with contextlib.suppress(OSError):  # a folder left in the temporary one is harmless
            _remove(scratch)


def _prepare(scratch: str) -> int:
    """A home with a workflow of :data:`TASKS` and a new run of it; the run's id."""
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
            return transitions.create_run(conn, workflow, [name for name, _ in TASKS])
    finally:
        conn.close()


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


def _status(scratch: str, run_id: int) -> str:
    conn = connect(os.path.join(scratch, layout.DB))
    try:
        row = runs.get(conn, run_id)
        return str(row["status"]) if row is not None else "no run"
    finally:
        conn.close()


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
    print(rehearse(sys.argv[1] if len(sys.argv) > 1 else "/tmp"))
