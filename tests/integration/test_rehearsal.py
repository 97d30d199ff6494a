"""The fork server's rehearsal (spad.runner.rehearsal): a real run started and stopped in a
scratch home before the first fork, that leaves nothing behind and never keeps runners from
starting."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from spad import home as layout
from spad import procs
from spad.runner import rehearsal
from spad.store.sqlite import connect, migrate
from tests.conftest import Server, clean_env, forkserver_pids, task, wait_for


def python(*args: str, **env: str) -> list[str]:
    """``python ARGS`` in a process of its own (a rehearsal sets signal handlers and starts
    tasks, as the fork server does): the lines it printed."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=120,
        check=True,
    )
    return done.stdout.splitlines()


def rehearse(temporary: Path, **env: str) -> str:
    """``python -m spad.runner.rehearsal``: a rehearsal as the fork server carries it out."""
    [said] = python("-m", "spad.runner.rehearsal", str(temporary), **env)
    return said


def processes_in(folder: Path) -> list[int]:
    """Live processes whose SPA_HOME is inside ``folder`` (the rehearsal's tasks have one)."""
    mark = f"SPA_HOME={folder}/".encode()
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    if any(item.startswith(mark) for item in handle.read().split(b"\0")):
                        found.append(int(name))
            except OSError:
                continue
    return found


def runners_log(home: Path) -> str:
    path = home / layout.LOGS / layout.RUNNERS_LOG
    return path.read_text() if path.exists() else ""


def fork_server_lines(home: Path) -> list[str]:
    return [line for line in runners_log(home).splitlines() if "fork server" in line]


def test_a_rehearsal_starts_a_run_stops_it_and_leaves_nothing(tmp_path: Path) -> None:
    # "stopped" is the run's end only if both tasks were started and then stopped gracefully.
    assert rehearse(tmp_path) == "stopped"
    assert list(tmp_path.iterdir()) == []  # its home removed
    assert processes_in(tmp_path) == []  # its tasks ended with it


def rehearse_rounds(temporary: Path, budget: float) -> tuple[str, list[str]]:
    """A rehearsal of ``ROUNDS`` runs with this time budget, in a process of its own: what it
    returned, and each run it carried out as ``run_id:status``."""
    probe = (
        "import sys\n"
        "from spad.runner import rehearsal\n"
        "carried_out, ended = [], []\n"
        "carry_out, statuses = rehearsal._carry_out, rehearsal._statuses\n"
        "def counted(scratch, run_id):\n"
        "    carried_out.append(run_id)\n"
        "    carry_out(scratch, run_id)\n"
        "def seen(scratch, run_ids):\n"
        "    ended.extend(statuses(scratch, run_ids))\n"
        "    return ended\n"
        "rehearsal._carry_out, rehearsal._statuses = counted, seen\n"
        "rehearsal.BUDGET = float(sys.argv[2])\n"
        "said, done = rehearsal.rehearse(sys.argv[1], rehearsal.ROUNDS)\n"
        "print(said, done, rehearsal.ROUNDS)\n"
        "print(' '.join(f'{run_id}:{said}' for run_id, said in zip(carried_out, ended)))\n"
    )
    said, each = python("-c", probe, str(temporary), str(budget))
    return said, each.split()


def test_a_rehearsal_carries_out_each_of_its_rounds_to_its_stop(tmp_path: Path) -> None:
    # Each round a run of its own, carried out by the runner's code and ended `stopped`.
    said, each = rehearse_rounds(tmp_path, budget=600)
    assert said == "stopped 16 16"
    assert each == [f"{run_id}:stopped" for run_id in range(1, 17)]
    assert list(tmp_path.iterdir()) == []
    assert processes_in(tmp_path) == []


def test_a_rehearsal_starts_no_round_once_its_budget_is_spent(tmp_path: Path) -> None:
    # A loaded machine: the first round always, then none once the budget is gone.
    said, each = rehearse_rounds(tmp_path, budget=0)
    assert said == "stopped 1 16"
    assert each == ["1:stopped"]
    assert list(tmp_path.iterdir()) == []
    assert processes_in(tmp_path) == []


def test_many_workflows_get_the_long_rehearsal() -> None:
    assert [rehearsal.rounds_for(n) for n in (0, 1, 9, 10, 1000)] == [1, 1, 1, 16, 16]


def test_a_runner_delay_skips_the_rehearsal(tmp_path: Path) -> None:
    began = time.monotonic()
    said = rehearse(tmp_path, SPAD_TEST_RUNNER_DELAY="30")
    assert said.startswith("skipped: a runner delay is injected")
    assert time.monotonic() - began < 30  # the fork server does not wait it out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("defined", "rehearsed"),
    [
        (2, "a run"),  # few (runners are forked from two workflows on): one run
        # Many: 16 runs, or fewer on a machine so loaded that the budget ran out (a test of its
        # own): each runner saves more than the rounds cost once.
        (10, r"(a run|\d+ runs)"),
    ],
)
def test_the_fork_server_rehearses_before_its_first_fork(
    make_server: Callable[..., Server], tmp_path: Path, defined: int, rehearsed: str
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = make_server(TMPDIR=str(temporary)).start()
    for number in range(defined):
        server.define(f"w{number}", task("t", "simple", "0"))
    server.call("run", workflow="w0")
    server.wait_status("w0", "success0")
    lines = fork_server_lines(server.home)
    assert len(lines) == 1
    pattern = rf"spad fork server: rehearsed {rehearsed} in \d+ ms \(workflows defined: {defined}\)"
    assert re.fullmatch(pattern, lines[0])
    assert list(temporary.iterdir()) == []
    assert processes_in(temporary) == []


def test_a_rehearsal_that_cannot_run_keeps_no_runner_from_starting(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    server = make_server(TMPDIR=str(not_a_folder)).start()
    server.define("w", task("t", "simple", "0"))
    server.define_spare()
    server.call("run", workflow="w")
    server.wait_status("w", "success0")
    wait_for(
        lambda: "spad fork server: rehearsal skipped: cannot make" in runners_log(server.home),
        what="the skipped rehearsal in runners.log",
    )


def test_a_rehearsal_that_fails_halfway_leaves_no_child(tmp_path: Path) -> None:
    # The run breaks once its tasks run (as a full disk would): they are killed, and reaped.
    probe = (
        "import os, sys\n"
        "from spad.runner import main, rehearsal\n"
        "def broken(*args):\n"
        "    raise OSError(28, 'No space left on device')\n"
        "main.Loop._on_signals = staticmethod(broken)\n"
        "print(rehearsal.rehearse(sys.argv[1])[0])\n"
        "try:\n"
        "    os.waitpid(-1, os.WNOHANG)\n"
        "    print('a child is left')\n"
        "except ChildProcessError:\n"
        "    print('no child')\n"
    )
    said, children = python("-c", probe, str(tmp_path))
    assert said.startswith("failed: OSError")
    assert children == "no child"
    assert list(tmp_path.iterdir()) == []


def test_a_signal_inbox_closed_gives_the_signals_back() -> None:
    # SIGHUP ignored, as under nohup: it must stay ignored, not become deadly.
    probe = (
        "import signal\n"
        "from spad.runner.signals import WATCHED, SignalInbox\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "before = {s: signal.getsignal(s) for s in WATCHED}\n"
        "inbox = SignalInbox()\n"
        "inbox.close()\n"
        "print(all(signal.getsignal(s) == before[s] for s in WATCHED),"
        " signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, signal.set_wakeup_fd(-1))\n"
    )
    [said] = python("-c", probe)
    assert said.split() == ["True", "True", "-1"]


def forkserver_state(server: Server) -> dict[str, object]:
    """What the fork server looks like to the runners it forks: its signals, its open
    descriptors (sockets and pipes by kind), its children."""
    [pid] = forkserver_pids(server.home)
    with open(f"/proc/{pid}/status") as handle:
        fields = dict(line.split(":\t", 1) for line in handle.read().splitlines() if ":\t" in line)
    descriptors = sorted(
        re.sub(r":\[\d+\]$", "", os.readlink(f"/proc/{pid}/fd/{fd}"))
        for fd in os.listdir(f"/proc/{pid}/fd")
    )
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        children = handle.read().split()
    return {
        "signals": {name: fields[name].strip() for name in ("SigIgn", "SigCgt", "SigBlk")},
        "descriptors": descriptors,
        "children": children,
    }


def forkserver_state_once_reaped(server: Server) -> dict[str, object]:
    """:func:`forkserver_state` once its runners are gone: a runner records its run's end,
    then closes and exits, and is a child until then."""

    def reaped() -> dict[str, object] | None:
        state = forkserver_state(server)
        return None if state["children"] else state

    found: dict[str, object] = wait_for(reaped, what="the fork server's runners to be reaped")
    return found


def test_the_fork_server_forks_runners_as_it_would_without_a_rehearsal(
    make_server: Callable[..., Server],
) -> None:
    states: list[dict[str, object]] = []
    for env in ({}, {"SPAD_TEST_NO_REHEARSAL": "1"}):
        server = make_server(**env)
        server.ignored_signals = (signal.SIGHUP,)  # started under nohup
        server.start()
        if not states:  # the same home both times
            server.define("w", task("t", "simple", "0"))
            server.define_spare()
        server.call("run", workflow="w")
        server.wait_status("w", "success0")
        states.append(forkserver_state_once_reaped(server))
        server.kill_everything()
    rehearsed, plain = states
    assert rehearsed == plain


def new_store(home: Path) -> None:
    (home / layout.LOGS).mkdir()
    conn = connect(home / layout.DB)
    migrate(conn)
    conn.close()


@contextlib.contextmanager
def forkserver_writing_to(home: Path, out: BinaryIO) -> Iterator[socket.socket]:
    """A fork server of ours for ``home``, its output (runners.log's place) on ``out``; yields
    our end of its channel, and closes it at the end (the fork server then exits)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    forkserver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spad.runner.forkserver",
            str(home),
            str(os.getpid()),
            str(theirs.fileno()),
            "1",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        pass_fds=(theirs.fileno(),),
        env=clean_env(),
    )
    theirs.close()
    ours.settimeout(30)
    try:
        yield ours
    finally:
        ours.close()
        forkserver.wait(timeout=30)


def test_a_fork_server_whose_log_cannot_be_written_still_forks(tmp_path: Path) -> None:
    new_store(tmp_path)
    with open("/dev/full", "wb") as full, forkserver_writing_to(tmp_path, full) as channel:
        channel.send(b"999")  # no such run: its runner says so and ends
        reply = channel.recv(64)
        assert reply.isdigit(), reply
        runner = int(reply)
        wait_for(lambda: not procs.is_alive(runner, procs.identity(runner)), what="the runner")


def test_a_fork_server_answers_a_request_that_is_no_run_id_with_an_error(tmp_path: Path) -> None:
    new_store(tmp_path)
    with open(tmp_path / "out", "wb") as out, forkserver_writing_to(tmp_path, out) as channel:
        channel.send(b"run 7")
        assert channel.recv(256) == b"error: bad request: a run id is digits, got b'run 7'"
        channel.send(b"999")  # and goes on serving
        assert channel.recv(64).isdigit()
