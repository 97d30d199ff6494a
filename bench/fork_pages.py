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
- ``fresh interpreter``: PSS of ``python -c 'sleep'``, the cost of one more Python process
  (the server, the fork server and a runner are three).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
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

import spad.runner.forkserver  # noqa: E402, F401 - what the fork server has loaded
from spad import freed  # noqa: E402
from spad.executors.local import find_spawner  # noqa: E402
from spad.store.sqlite import connect, migrate  # noqa: E402
from spad.store.turns import RunnerStore  # noqa: E402


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
    requests: int, json_requests: bool, child_work: Callable[[], None], take_chunks: bool = True
) -> list[int]:
    """A fork server's loop in a child of ours: ``requests`` forks, each child does
    ``child_work`` and stops; measured once every request was served. ``take_chunks``: the
    loop first takes the heap's free chunks, as the fork server does."""
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
    for run_id in range(requests):
        if json_requests:
            ours.send(json.dumps({"run_id": run_id, "env": env}).encode())
            children.append(int(json.loads(ours.recv(100))["pid"]))
        else:
            ours.send(b"%d" % run_id)
            children.append(int(ours.recv(100)))
    deadline = time.monotonic() + 30
    while not all(stopped(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.01)  # children stop themselves within milliseconds
    sizes = [private_kib(pid) for pid in children[:-1]]  # the last saw no later request
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    ours.close()
    os.waitpid(server, 0)
    return sizes


def serve(channel: socket.socket, json_requests: bool, child_work: Callable[[], None]) -> None:
    """The fork server's loop, with the request of now (a run id) or of before (JSON)."""
    # The fork server's own read size: a run id is a few bytes.
    while message := channel.recv(1 << 20 if json_requests else 64):
        if json_requests:
            request = json.loads(message)
            int(request["run_id"]), dict(request["env"])
        child = os.fork()
        if child == 0:
            channel.close()
            child_work()
            os.kill(os.getpid(), signal.SIGSTOP)
            os._exit(0)
        channel.send(json.dumps({"pid": child}).encode() if json_requests else b"%d" % child)
    while True:  # our children, killed by the measuring side: reaped before we go
        try:
            os.wait()
        except ChildProcessError:
            return


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spad-fork-pages-") as folder:
        db = os.path.join(folder, "spa.db")
        conn = connect(db)
        migrate(conn)
        conn.close()

        def store_round() -> None:
            store = RunnerStore(db)
            store.execute("SELECT id FROM runs LIMIT 1").fetchall()
            store.close()

        find_spawner()
        gc.collect()
        gc.freeze()
        rows = {
            "idle, parent reads run ids": serving(args.children, False, lambda: None),
            "idle, parent reads JSON + environment": serving(args.children, True, lambda: None),
            "opened spa.db, one read, closed": serving(args.children, False, store_round),
            "  the same, heap's free chunks left": serving(
                args.children, False, store_round, take_chunks=False
            ),
        }
    print(f"{'forked child (KiB private, median)':<42}{'KiB':>8}")
    for name, sizes in rows.items():
        print(f"{name:<42}{statistics.median(sizes):>8.0f}")
    print(f"{'fresh interpreter (KiB PSS)':<42}{fresh_interpreter_pss():>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
