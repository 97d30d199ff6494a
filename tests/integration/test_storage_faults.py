"""spa.db refused or damaged: a full disk, a write lock held by another process, corrupted
pages. Real files: a small tmpfs for the full disk (root only), a real locking process."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spad import procs
from spad.cli.client import ServerError
from tests import storage
from tests.conftest import Server, run_spad, task, wait_for
from tests.storage import fill, locked


def refusal(server: Server, method: str, **params: object) -> ServerError:
    with pytest.raises(ServerError) as caught:
        server.call(method, **params)
    return caught.value


def runner_of(server: Server, run_id: int) -> int:
    with contextlib.closing(server.db()) as conn:
        row = conn.execute("SELECT runner_pid FROM runs WHERE id = ?", (run_id,)).fetchone()
    return int(row[0])


# -- a database locked by another process ----------------------------------------------------


def test_a_locked_database_is_answered_busy_and_waited_out_by_runners(server: Server) -> None:
    server.define("w", task("first", "simple", "2"), task("second", "simple", "60"))
    run_id = server.call("run", workflow="w")["run_id"]
    server.wait_task("w", "first", "running")
    runner = runner_of(server, run_id)
    with locked(server.home / "spa.db"):
        started = time.monotonic()
        assert server.status("w")["status"] == "running"  # a read does not wait on a writer
        error = refusal(server, "create", **{"project": {"name": "pr1", "workflows": []}})
        assert error.code == -32603 and "database busy" in error.message
        error = refusal(server, "stop", workflow="w")
        assert "database busy" in error.message
        local = server.home.parent / "copied"
        local.write_text("x\n")
        with pytest.raises(ServerError, match="database busy"):  # its audit cannot be written
            server.client().put_file(local, "data/copied")
        assert time.monotonic() - started < 20, "each refusal comes within a few seconds"
        # ``first`` ends meanwhile; the runner cannot record it for longer than its own busy
        # timeout (10 s), and waits rather than dies.
        wait_for(
            lambda: "refused a write" in (server.home / "logs" / "runners.log").read_text(),
            what="the runner to be refused",
        )
        assert procs.is_alive(runner, procs.identity(runner))
    server.wait_task("w", "second", "running")
    state = server.status("w")
    assert state["run_id"] == run_id and runner_of(server, run_id) == runner
    assert [t["status"] for t in state["tasks"]] == ["success0", "running"]
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")
    audit = server.call("audit")["entries"]
    assert any(e["method"] == "stop" and e["outcome"] == "ok" for e in audit)


# -- a damaged database ------------------------------------------------------------------------


def test_a_damaged_database_stops_the_start_before_the_port_is_bound(
    make_server: Callable[..., Server], home: Path
) -> None:
    server = make_server().start()
    server.define("w", task("t", "simple", "0"))
    for _ in range(3):
        server.call("run", workflow="w")
        server.wait_status("w", "success0")
    server.stop()
    db = home / "spa.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.executemany(
            "INSERT INTO audit (at, method, client, outcome, detail) VALUES ('', 'x', '', '', ?)",
            [("y" * 200,) for _ in range(500)],
        )
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with db.open("r+b") as handle:  # every page but the header's
        size = handle.seek(0, os.SEEK_END)
        handle.seek(page)
        handle.write(b"\xa5" * (size - page))

    result = run_spad("--home", str(home), "--listen", "127.0.0.1:0")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "serving" not in result.stderr
    assert "is damaged" in result.stderr
    assert "Restore it from a backup" in result.stderr and f"mv {db} {db}.damaged" in result.stderr
    db.rename(home / "spa.db.damaged")  # as it says: spad then starts anew
    assert make_server().start().call("list") == {"projects": []}


# -- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs (mounting needs root: elsewhere the test is skipped, and says so)."""
    if os.geteuid() != 0:
        pytest.skip("a full disk needs root to mount a small tmpfs: run the tests as root")
    with storage.small_disk(tmp_path / "disk", "12m") as mount:
        yield mount


def test_a_full_disk_is_refused_and_recovered_from_once_space_returns(
    small_disk: Path, tmp_path: Path
) -> None:
    server = Server(storage.no_disk_floor(small_disk / "home"))
    try:
        server.start()
        printed = tmp_path / "printed"
        server.script(
            "chatty",
            'head -c 40000000 /dev/zero | tr "\\0" x | fold -w 99\ntouch "$MARK"\nexec sleep 60\n',
        )
        server.define("w", task("t", "chatty", env={"MARK": str(printed)}))
        run_id = server.call("run", workflow="w")["run_id"]
        wait_for(printed.exists, what="40 MB printed into a 12 MiB disk")
        filler = fill(small_disk)
        # The log stopped; the task and its runner did not.
        assert server.task("w", "t")["status"] == "running"
        runner = runner_of(server, run_id)
        assert procs.is_alive(runner, procs.identity(runner))

        # Every request is answered, the audit trail being unwritable too.
        error = refusal(server, "create", **{"project": {"name": "pr2"}})
        assert error.code == -32603 and "disk full" in error.message
        error = refusal(server, "stop", workflow="w")
        assert error.code == -32603 and "disk full" in error.message

        # The task dies: its runner cannot record it and ends, its task with it.
        os.kill(server.task("w", "t")["pid"], signal.SIGKILL)
        wait_for(lambda: not procs.is_alive(runner, procs.identity(runner)), what="runner end")
        assert server.status("w")["run_id"] == run_id
        server_log = server.stderr_path
        assert server_log is not None
        wait_for(
            lambda: "trying again" in server_log.read_text(),
            what="spad to be refused the handling of the runner's end",
        )

        filler.unlink()
        for log in (small_disk / "home" / "logs" / "pr1").rglob("*.log*"):
            log.unlink()
        state = wait_for(
            lambda: (
                (s := server.status("w"))["run_id"] != run_id
                and s["tasks"][0]["status"] == "running"
                and s
            ),
            timeout=60,
            what="the workflow to run again once there is room",
        )
        with contextlib.closing(server.db()) as conn:
            old = conn.execute("SELECT finished FROM runs WHERE id = ?", (run_id,)).fetchone()
            resumed = conn.execute(
                "SELECT resumed_from FROM runs WHERE id = ?", (state["run_id"],)
            ).fetchone()
        assert (old[0], resumed[0]) == (2, run_id)
    finally:
        server.kill_everything()


def test_a_log_that_hits_a_full_disk_drops_output_and_says_so_later(small_disk: Path) -> None:
    from spad.logfiles import RotatingLog

    log = RotatingLog(str(small_disk / "logs" / "t.1.log"))
    log.write(b"before\n")
    filler = fill(small_disk)
    log.write(b"x" * 100_000)  # what fits in the file's last page goes in; the rest is lost
    lost = log.lost
    assert 0 < lost <= 100_000
    filler.unlink()
    log.write(b"after\n")
    log.close()
    text = (small_disk / "logs" / "t.1.log").read_text()
    note = f"\nspad: {lost} bytes of output lost here (No space left on device)\n"
    assert text == "before\n" + "x" * (100_000 - lost) + note + "after\n"
