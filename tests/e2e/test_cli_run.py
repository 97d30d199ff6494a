"""spa_ctl driving real runs: run, status, stop (--wait), logs (-n, -f)."""

from __future__ import annotations

import subprocess
import time

from tests.conftest import EXAMPLE, VENV_BIN, Server, clean_env
from tests.e2e.test_cli import ok, spa_ctl


def test_run_status_stop_as_a_user_would(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    assert "started wf1: run" in ok(server, "run", "-w", "wf1")
    server.wait_task("wf1", "t12", "running")
    assert "pr1/wf1: running" in ok(server, "status", "-w", "wf1")
    assert "wf1: stopping" in ok(server, "stop", "-w", "wf1")
    assert "stopping" in ok(server, "status", "-w", "wf1") or True  # may already be stopped
    server.wait_status("wf1", "stopped")
    table = ok(server, "status", "-w", "wf1")
    assert "pr1/wf1: stopped" in table and "stopped" in table.splitlines()[-1]


def test_stop_wait_returns_when_stopped(server: Server) -> None:
    ok(
        server,
        "create",
        "-j",
        '{"project": {"name": "pr1", "workflows": [{"name": "w", "tasks":'
        ' [{"name": "s", "function": "stubborn", "params": ["60"], "stop_timeout": 0.5}]}]}}',
    )
    ok(server, "run", "-w", "w")
    server.wait_task("w", "s", "running")
    server.wait_trapped("w", "s")
    assert "w: stopped" in ok(server, "stop", "-w", "w", "--wait")
    assert server.task("w", "s")["status"] == "killed"


def test_logs_tail_and_follow_while_the_task_runs(server: Server) -> None:
    talker = server.home / "bin" / "talker"
    talker.write_text(
        "#!/usr/bin/env bash\necho line1\n"
        "until [ -e go ]; do sleep 0.05; done\n"  # the test has seen line1 while it runs
        "for i in 2 3 4 5; do echo line$i; sleep 0.3; done\n"
        "printf 'no newline at the end'\n"
    )
    talker.chmod(0o755)
    ok(
        server,
        "create",
        "-j",
        '{"project": {"name": "pr1", "workflows": [{"name": "w", "tasks":'
        ' [{"name": "t", "function": "talker"}]}]}}',
    )
    ok(server, "run", "-w", "w")
    server.wait_task("w", "t", "running")
    env = clean_env(SPA_URL=server.url, SPA_HOME=str(server.home))
    follower = subprocess.Popen(
        [str(VENV_BIN / "spa_ctl"), "logs", "-w", "w", "-t", "t", "-f"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = follower.stdout.readline() if follower.stdout else ""
        assert first == "line1\n"
        assert server.task("w", "t")["status"] == "running", "follow printed only after the end"
        (server.home / "data" / "go").touch()
        # Read through the same buffered file: readline() may have buffered more than a
        # line, which communicate(), reading the raw descriptor, would never see.
        rest = follower.stdout.read() if follower.stdout else ""
        follower.wait(timeout=30)
    finally:
        follower.kill()
        follower.wait()
        if follower.stdout:
            follower.stdout.close()
    assert rest == "line2\nline3\nline4\nline5\nno newline at the end"
    assert follower.returncode == 0
    assert ok(server, "logs", "-w", "w", "-t", "t", "-n", "2") == "line5\nno newline at the end"
    started = time.monotonic()
    assert "line1" in ok(server, "logs", "-w", "w", "-t", "t", "-f")  # ended: returns at once
    assert time.monotonic() - started < 10


def test_a_task_sets_its_own_status_without_the_virtualenv_on_path(server: Server) -> None:
    assert str(VENV_BIN) not in clean_env()["PATH"]
    ok(
        server,
        "create",
        "-j",
        '{"project": {"name": "pr1", "workflows": [{"name": "w", "tasks":'
        ' [{"name": "t", "function": "wait", "params": ["0.5"]}]}]}}',
    )
    ok(server, "run", "-w", "w")
    server.wait_task("w", "t", "waiting")
    server.wait_status("w", "success0")
    result = spa_ctl(server, "set_status", "-w", "w", "-t", "t", "-s", "waiting")
    assert result.returncode == 1 and "not running" in result.stderr
