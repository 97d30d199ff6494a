"""The fork server's rehearsal (spad.runner.rehearsal): a real run started and stopped in a
scratch home before the first fork, that leaves nothing behind and never keeps runners from
starting."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from spad import home as layout
from tests.conftest import Server, clean_env, task, wait_for


def rehearse(temporary: Path, **env: str) -> str:
    """``python -m spad.runner.rehearsal``: a rehearsal in a process of its own (it sets signal
    handlers and starts tasks), as the fork server carries it out."""
    done = subprocess.run(
        [sys.executable, "-m", "spad.runner.rehearsal", str(temporary)],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


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


def test_a_rehearsal_starts_a_run_stops_it_and_leaves_nothing(tmp_path: Path) -> None:
    # "stopped" is the run's end only if both tasks were started and then stopped gracefully.
    assert rehearse(tmp_path) == "stopped"
    assert list(tmp_path.iterdir()) == []  # its home removed
    assert processes_in(tmp_path) == []  # its tasks ended with it


def test_a_runner_delay_skips_the_rehearsal(tmp_path: Path) -> None:
    began = time.monotonic()
    said = rehearse(tmp_path, SPAD_TEST_RUNNER_DELAY="30")
    assert said.startswith("skipped: a runner delay is injected")
    assert time.monotonic() - began < 30  # the fork server does not wait it out
    assert list(tmp_path.iterdir()) == []


def test_the_fork_server_rehearses_before_its_first_fork(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = make_server(TMPDIR=str(temporary)).start()
    server.define("w", task("t", "simple", "0"))
    server.call("run", workflow="w")
    server.wait_status("w", "success0")
    lines = [line for line in runners_log(server.home).splitlines() if "fork server" in line]
    assert len(lines) == 1
    assert lines[0].startswith("spad fork server: rehearsed a run's start and stop in ")
    assert list(temporary.iterdir()) == []
    assert processes_in(temporary) == []


def test_a_rehearsal_that_cannot_run_keeps_no_runner_from_starting(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    server = make_server(TMPDIR=str(not_a_folder)).start()
    server.define("w", task("t", "simple", "0"))
    server.call("run", workflow="w")
    server.wait_status("w", "success0")
    wait_for(
        lambda: "spad fork server: rehearsal skipped: cannot make" in runners_log(server.home),
        what="the skipped rehearsal in runners.log",
    )


def test_a_signal_inbox_closed_gives_the_signals_back() -> None:
    probe = (
        "import signal\n"
        "from spad.runner.signals import WATCHED, SignalInbox\n"
        "inbox = SignalInbox()\n"
        "inbox.close()\n"
        "print(all(signal.getsignal(s) == signal.SIG_DFL for s in WATCHED),"
        " signal.set_wakeup_fd(-1))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "-1"]
