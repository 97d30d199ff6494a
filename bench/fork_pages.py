"""What a forked runner's private memory is made of: children of a parent pre-loaded as spad's
fork server is, each stopped at one point of its work and measured from outside.

    .venv/bin/python bench/fork_pages.py [--children 8]

A page shared by parent and child becomes private to whichever keeps the old copy when the
other writes it, so a child owns (1) the pages it writes itself and (2) the pages the parent
writes after the fork. Rows (KiB of private memory a child, median):

- ``idle, parent reads run ids``: the child stops at once; the parent goes on serving requests
  of a run id (what the fork server does now): the floor of any forked runner.
- ``idle, parent reads JSON + environment``: the same with the former request, a JSON object
  holding the runner's environment (about 40 variables), parsed after each fork.
- ``opened spa.db, one read, closed``: the child opens the store as a runner does
  (``RunnerStore``), reads one row, closes it and gives the freed heap back: what SQLite
  alone leaves a runner, although SQLite itself holds about 150 KB at most. The parent has
  taken its heap's free chunks first, as the fork server does (``freed.take_free_chunks``).
- ``the same, heap's free chunks left``: without that, SQLite's allocations land in the free
  chunks scattered over the parent's heap, and each copies a page.
- ``least runner: claim, 3 sleeps started and recorded``: the least a forked Python runner
  does for a W8 workflow, written out in a few lines: claim the run, start its three
  ``sleep`` (``os.posix_spawn``, a log file each), record them running in one transaction,
  let go of the store as an idle runner does, and stop. It sets up what it would need to be
  stopped and to reap (the signal pipe in a selector, the subreaper) but has no engine.
- ``spad's runner on the same run, idle``: what the fork server's child does
  (``forkserver._become_runner``), measured once its three tasks run and it has let go of
  the store: the difference to the row above is what spad's engine itself costs a runner.
- ``fresh interpreter``: PSS of ``python -c 'sleep'``, the cost of one more Python process
  (the server, the fork server and a runner are three).

The two runner rows carry out real runs of a real ``spa.db``, made beforehand by a separate
process so that this one has loaded just what the fork server loads.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

gc.disable()  # as the fork server: nothing collected (and so copied) before the freeze
from common import pss_kib  # noqa: E402

from spad import freed, procs  # noqa: E402
from spad import home as layout  # noqa: E402
from spad.executors.local import find_spawner  # noqa: E402
from spad.runner import forkserver  # noqa: E402 - what the fork server has loaded
from spad.runner.signals import SignalInbox  # noqa: E402
from spad.store import runs  # noqa: E402
from spad.store.sqlite import connect, migrate, transaction  # noqa: E402
from spad.store.turns import RunnerStore  # noqa: E402

#: The W8 workflow (bench/scale.py): two background ``sleep`` and one awaited.
TASKS = (("bg1", "parallel"), ("bg2", "parallel"), ("main", "await"))


def private_kib(pid: int) -> int:
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith(("Private_Dirty", "Private_Clean")):
                total += int(line.split()[1])
    return total


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] == "T"


def serving(
    requests: int | list[int],
    json_requests: bool,
    child_work: Callable[[int], object],
    take_chunks: bool = True,
    ready: Callable[[int], bool] = stopped,
) -> list[int]:
    """A fork server's loop in a child of ours: a fork for each request (a count, or the run
    ids), whose child does ``child_work(request)`` and stops; measured once every request was
    served and every child is ``ready``. ``take_chunks``: the loop first takes the heap's free
    chunks, as the fork server does."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = os.fork()
    if server == 0:
        ours.close()
        if take_chunks:
            freed.take_free_chunks()
        serve(theirs, json_requests, child_work)
        os._exit(0)
    theirs.close()
    env = dict(os.environ, SPA_URL="http://127.0.0.1:8080", SPA_HOME="/opt/spa")
    children = []
    for run_id in range(requests) if isinstance(requests, int) else requests:
        if json_requests:
            ours.send(json.dumps({"run_id": run_id, "env": env}).encode())
            children.append(int(json.loads(ours.recv(100))["pid"]))
        else:
            ours.send(b"%d" % run_id)
            children.append(int(ours.recv(100)))
    deadline = time.monotonic() + 30
    while not all(ready(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.01)  # children are ready within milliseconds
    sizes = [private_kib(pid) for pid in children[:-1]]  # the last saw no later request
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the child and the tasks it started, if any
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    ours.close()
    os.waitpid(server, 0)
    return sizes


def serve(channel: socket.socket, json_requests: bool, child_work: Callable[[int], object]) -> None:
    """The fork server's loop, with the request of now (a run id) or of before (JSON)."""
    # The fork server's own read size: a run id is a few bytes.
    while message := channel.recv(1 << 20 if json_requests else 64):
        if json_requests:
            request = json.loads(message)
            run_id, _ = int(request["run_id"]), dict(request["env"])
        else:
            run_id = int(message)
        child = os.fork()
        if child == 0:
            channel.close()
            child_work(run_id)
            os.kill(os.getpid(), signal.SIGSTOP)
            os._exit(0)
        channel.send(json.dumps({"pid": child}).encode() if json_requests else b"%d" % child)
    while True:  # our children, killed by the measuring side: reaped before we go
        try:
            os.wait()
        except ChildProcessError:
            return


def make_runs(root: Path, count: int) -> list[int]:
    """A home whose ``spa.db`` holds ``count`` runs of the W8 workflow, made by another process
    (the definitions' model is not the fork server's to load); returns their ids."""
    out = subprocess.run(
        [sys.executable, __file__, "--make-runs", str(root), str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(out.stdout))


def print_new_runs(root: Path, count: int) -> None:
    """``--make-runs``: what :func:`make_runs` asks of a process of its own."""
    from spad import provision
    from spad.definitions import catalog
    from spad.definitions.model import parse_spec
    from spad.store import definitions as defs
    from spad.transitions import create_run

    home = provision.prepare(layout.Home(root))
    provision.make_store(home)
    (home.bin / "sleep").symlink_to("/bin/sleep")
    conn = connect(home.db)
    migrate(conn)
    tasks = [{"name": n, "function": "sleep", "params": ["600"], "exec": e} for n, e in TASKS]
    names = [f"w{i}" for i in range(count)]
    workflows = [{"name": name, "tasks": tasks} for name in names]
    spec = {"context": {"project": {"name": "bench", "workflows": workflows}}}
    catalog.create(conn, parse_spec(spec))
    project = defs.project(conn, "bench")
    assert project is not None
    ids = []
    with transaction(conn):
        for name in names:
            row = defs.workflow(conn, project["id"], name)
            assert row is not None
            ids.append(create_run(conn, row["id"], [task for task, _ in TASKS]))
    print(json.dumps(ids))


def least_runner(root: Path, run_id: int) -> None:
    """The least a forked runner does for a W8 run (see the module's docstring)."""
    os.setpgid(0, 0)  # a group of its own: measured, it is killed with its tasks
    inbox = SignalInbox()  # what a runner needs to be stopped, and to reap what its tasks leave
    procs.become_subreaper()
    waiting = selectors.DefaultSelector()
    waiting.register(inbox.fileno(), selectors.EVENT_READ)
    home = layout.Home(root)
    store = RunnerStore(str(home.db), cache_kib=128)  # as the runner's
    conn = store.connection()
    pid = os.getpid()
    with transaction(conn):
        runs.claim(conn, run_id, pid, procs.identity(pid))
    runs.with_names(conn, run_id)  # what the run is: its workflow and project
    started = []
    for name, _ in TASKS:
        log_path = str(home.logs / f"{run_id}-{name}.log")
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        task = os.posix_spawn(
            "/bin/sleep",
            ["sleep", "600"],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)],
        )
        os.close(log)
        started.append((name, task, log_path))
    with transaction(conn):
        for name, task, log_path in started:
            runs.task_launched(
                conn, run_id, name, "running", task, procs.identity(task), 1, log_path
            )
    store.close()  # as an idle runner: the connection closed, its heap given back


def spad_runner(root: Path, run_id: int) -> None:
    """What the fork server's child does: carry out the run, for as long as it lasts."""
    log = str(root / layout.LOGS / layout.RUNNERS_LOG)
    os._exit(forkserver._become_runner(str(root), run_id, log))


def idle_runner(root: Path) -> Callable[[int], bool]:
    """Ready: the runner has started its run's tasks and holds no lock on spa.db (an idle
    runner closes its connection)."""
    db = sqlite3.connect(f"file:{root / layout.DB}?mode=ro", uri=True)

    def ready(pid: int) -> bool:
        running = db.execute(
            "SELECT count(*) FROM run_tasks t JOIN runs r ON r.id = t.run_id"
            " WHERE r.runner_pid = ? AND t.status = 'running'",
            (pid,),
        ).fetchone()[0]
        with open("/proc/locks") as handle:
            locked = any(line.split()[4] == str(pid) for line in handle)
        return running == len(TASKS) and not locked

    return ready


def fresh_interpreter_pss() -> int:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)  # an interpreter's start takes about 20 ms
        return pss_kib(child.pid)
    finally:
        child.kill()
        child.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--children", type=int, default=8)
    parser.add_argument("--make-runs", nargs=2, metavar=("HOME", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_runs:
        print_new_runs(Path(args.make_runs[0]), int(args.make_runs[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="spad-fork-pages-") as folder:
        db = os.path.join(folder, "spa.db")
        conn = connect(db)
        migrate(conn)
        conn.close()

        def store_round(_run_id: int) -> None:
            store = RunnerStore(db)
            store.execute("SELECT id FROM runs LIMIT 1").fetchall()
            store.close()

        home = Path(folder) / "home"
        run_ids = make_runs(home, 2 * args.children)
        least, spads = run_ids[: args.children], run_ids[args.children :]
        find_spawner()
        gc.collect()
        gc.freeze()
        rows = {
            "idle, parent reads run ids": serving(args.children, False, lambda _: None),
            "idle, parent reads JSON + environment": serving(args.children, True, lambda _: None),
            "opened spa.db, one read, closed": serving(args.children, False, store_round),
            "  the same, heap's free chunks left": serving(
                args.children, False, store_round, take_chunks=False
            ),
            "least runner: claim, 3 sleeps started and recorded": serving(
                least, False, lambda run_id: least_runner(home, run_id)
            ),
            "spad's runner on the same run, idle": serving(
                spads, False, lambda run_id: spad_runner(home, run_id), ready=idle_runner(home)
            ),
        }
    print(f"{'forked child (KiB private, median)':<52}{'KiB':>8}")
    for name, sizes in rows.items():
        print(f"{name:<52}{statistics.median(sizes):>8.0f}")
    print(f"{'fresh interpreter (KiB PSS)':<52}{fresh_interpreter_pss():>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
