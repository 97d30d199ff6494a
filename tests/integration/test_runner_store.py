"""A runner holds spa.db open only while statements need it: a task's output is written to its
log without opening the store (a thousand runners of chatty tasks each opened spa.db, loaded
its schema and took its locks at every line)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from spad import home as layout
from spad.logfiles import path_for
from tests.conftest import Server, task, wait_for


def holds_store(pid: int, home: Path) -> bool:
    """True while ``pid`` has spa.db (or its -wal, -shm) open."""
    store = str(home / layout.DB)
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(store):
                return True
        except OSError:  # closed while we looked
            continue
    return False


def lines(path: str) -> int:
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")
    except FileNotFoundError:
        return 0


def test_a_runner_whose_task_prints_leaves_spa_db_closed(server: Server) -> None:
    server.script("ticker", "while :; do echo tick; sleep 0.05; done\n")
    server.define("w", task("t", "ticker", exec="parallel"))
    run_id = server.call("run", workflow="w")["run_id"]
    server.wait_task("w", "t", "running")
    runner = int(
        server.db().execute("SELECT runner_pid FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    )
    log = path_for(server.home / layout.LOGS, "pr1", "w", run_id, "t", 1)
    # A line every 0.05 s woke the runner before it had been idle the 0.2 s that closed spa.db.
    wait_for(lambda: not holds_store(runner, server.home), what="the runner to close spa.db")
    printed = lines(log)
    deadline = time.monotonic() + 30
    while lines(log) < printed + 10:  # ten lines, each a wake of the runner
        assert not holds_store(runner, server.home), "a line of output opened spa.db"
        assert time.monotonic() < deadline, "the task's lines stopped coming"
        time.sleep(0.005)  # a core left to the ticker and the runner
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")
