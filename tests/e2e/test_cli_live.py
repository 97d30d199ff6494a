"""spa_ctl events and spa_ctl watch against the real server: fed by the stream, no polling."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import VENV_BIN, Server, clean_env, task, wait_for
from tests.e2e.test_cli import ok, refused, spa_ctl

#: Runs a command with SIGINT at its default, as a terminal's foreground job has it: a suite
#: started from the background of a script inherits SIGINT ignored, and so would spa_ctl.
AS_FOREGROUND = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execv(sys.argv[1], sys.argv[1:])"
)


class Running:
    """A spa_ctl that keeps printing, as a person runs it in a terminal (Ctrl-C ends it); its
    output lines as they come."""

    def __init__(self, server: Server, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        environment = clean_env(SPA_URL=server.url, SPA_HOME=str(server.home), **(env or {}))
        self.process = subprocess.Popen(
            [sys.executable, "-c", AS_FOREGROUND, str(VENV_BIN / "spa_ctl"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def running() -> Iterator[Any]:
    made: list[Running] = []

    def start(server: Server, *args: str, **kwargs: Any) -> Running:
        made.append(Running(server, *args, **kwargs))
        return made[-1]

    yield start
    for command in made:
        command.close()


def test_events_prints_each_transition_as_it_happens(server: Server, running: Any) -> None:
    server.define("wf1", task("t1", "simple", "0"))
    server.define("wf2", task("t1", "simple", "0"))
    server.call("run", project="pr1", workflow="wf2")
    server.wait_status("wf2", "success0")
    # Each prints the newest stored event first, then follows after it: nothing is missed.
    lines = running(server, "--json", "events", "-w", "wf1", "--since", "0")
    readable = running(server, "events", "-n", "1")
    wait_for(lambda: "workflow  pr1/wf2  success0" in readable.text)
    server.call("run", project="pr1", workflow="wf1")
    wait_for(lambda: '"status": "success0", "attempt": null' in lines.text)
    wait_for(lambda: "workflow  pr1/wf1  success0" in readable.text)
    assert lines.interrupt() == 0 and readable.interrupt() == 0
    seen = [json.loads(line) for line in lines.lines]
    assert {e["workflow"] for e in seen} == {"wf1"}  # -w filters
    assert [(e["kind"], e.get("task"), e["status"]) for e in seen] == [
        ("workflow", None, "running"),
        ("task", "t1", "new"),
        ("task", "t1", "running"),
        ("task", "t1", "success0"),
        ("workflow", None, "success0"),
    ]
    assert any(
        "task      pr1/wf1/t1  success0  run 2  attempt 1  exit 0" in line
        for line in readable.lines
    )


def test_events_prints_the_stored_ones(server: Server) -> None:
    server.define("wf1", task("t1", "simple", "0"))
    server.call("run", project="pr1", workflow="wf1")
    server.wait_status("wf1", "success0")
    last_three = ok(server, "events", "-n", "3", "--no-follow").splitlines()
    assert len(last_three) == 3 and "workflow  pr1/wf1  success0" in last_three[-1]
    after = json.loads(
        ok(server, "--json", "events", "--since", "4", "--no-follow").splitlines()[0]
    )
    assert after["id"] == 5


def test_events_says_why_it_cannot_follow(server: Server) -> None:
    assert "unauthorized" in refused(spa_ctl(server, "--token", "x" * 40, "events"), 1)
    gone = spa_ctl(server, "--url", "http://127.0.0.1:9", "events")
    assert gone.returncode == 3 and "no spad server" in gone.stderr


def test_watch_redraws_a_workflow_s_tasks_at_each_change(server: Server, running: Any) -> None:
    server.script("gate", 'while [ ! -e "$SPA_HOME/data/go" ]; do sleep 0.05; done\n')
    server.define("wf1", task("t1", "gate", exec="await"), task("t2", "simple", "0"))
    view = running(server, "watch", "-w", "wf1")
    wait_for(lambda: "t2    not run" in view.text)
    server.call("run", project="pr1", workflow="wf1")
    wait_for(lambda: "t1    running" in view.text)
    assert "success0" not in view.text
    (server.home / "data" / "go").write_text("")
    wait_for(lambda: "t2    success0" in view.text)
    frames = view.text.split("spad watch · pr1/wf1")
    assert len(frames) >= 3  # the first frame, then one per change
    assert view.interrupt() == 0


def test_watch_shows_every_workflow(server: Server, running: Any) -> None:
    server.define("wf1", task("t1", "simple", "0"))
    server.define("wf2", task("t1", "error", "2", retries=1, retry_delay=0.05))
    view = running(server, "watch")
    wait_for(lambda: "every project" in view.text)
    server.call("run", project="pr1", workflow="wf2")
    wait_for(lambda: "wf2       error(2)" in view.text)
    last = view.text.rsplit("spad watch", 1)[1]
    assert "pr1      wf1       not run" in last
    assert "error(2)    1         1" in last  # run 1, one restart
    assert view.interrupt() == 0
