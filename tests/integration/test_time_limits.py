"""``timeout`` and ``idle_timeout``: a task that runs too long or falls silent is stopped with its
own ladder and ends ``timeout``; ``heartbeat`` keeps a quiet task alive."""

from __future__ import annotations

from datetime import datetime

import pytest

from spad.cli.client import ServerError
from tests.conftest import Server, task, wait_for

#: Load on a shared machine delays a transition; never the rule being checked.
SLACK = 3.0


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def test_a_task_past_its_timeout_ends_timeout_and_so_does_the_workflow(server: Server) -> None:
    server.script("sleeper", "exec sleep 3600\n")
    server.define("w", task("t", "sleeper", timeout=1, stop_timeout=1, retries=0))
    server.call("run", workflow="w")
    state = server.wait_status("w", "timeout")
    (t,) = state["tasks"]
    assert t["status"] == "timeout"
    took = seconds(t["started_at"], t["ended_at"])
    assert 1 <= took < 1 + 1 + SLACK, f"ended {took:.2f}s after it started (timeout 1, stop 1)"
    assert "still running after 1 s" in server.call("logs", workflow="w", task="t")
    server.no_process_left()


def test_a_task_deaf_to_its_stop_signal_is_killed_and_still_ends_timeout(server: Server) -> None:
    # The timeout leaves bash time to set its trap on a loaded machine: it is the test's
    # subject, a SIGTERM before the trap would end the task at once.
    server.define("w", task("t", "stubborn", "3600", timeout=3, stop_timeout=1, retries=0))
    server.call("run", workflow="w")
    server.wait_trapped("w", "t")
    (t,) = server.wait_status("w", "timeout")["tasks"]
    took = seconds(t["started_at"], t["ended_at"])
    assert 4 <= took < 4 + SLACK, f"killed {took:.2f}s after it started (timeout 3, stop 1)"
    server.no_process_left()


def test_a_timed_out_task_is_restarted_per_retries(server: Server) -> None:
    server.script("sleeper", "exec sleep 3600\n")
    server.define(
        "w", task("t", "sleeper", timeout=0.5, stop_timeout=1, retries=1, retry_delay=0.1)
    )
    server.call("run", workflow="w")
    (t,) = server.wait_status("w", "timeout")["tasks"]
    assert (t["status"], t["attempt"]) == ("timeout", 2)


def test_with_on_failure_continue_the_list_goes_on(server: Server) -> None:
    server.script("sleeper", "exec sleep 3600\n")
    server.define(
        "w",
        task("t", "sleeper", timeout=0.5, stop_timeout=1, retries=0),
        task("next", "simple", "0"),
        on_failure="continue",
    )
    server.call("run", workflow="w")
    state = server.wait_status("w", "timeout")
    assert [t["status"] for t in state["tasks"]] == ["timeout", "success0"]


def test_a_silent_task_ends_timeout_after_its_idle_timeout(server: Server) -> None:
    server.script("quiet", "echo started; exec sleep 3600\n")
    server.define("w", task("t", "quiet", idle_timeout=1, stop_timeout=1, retries=0))
    server.call("run", workflow="w")
    (t,) = server.wait_status("w", "timeout")["tasks"]
    took = seconds(t["started_at"], t["ended_at"])
    assert 1 <= took < 1 + 1 + SLACK
    assert "no output and no heartbeat for 1 s" in server.call("logs", workflow="w", task="t")
    server.no_process_left()


@pytest.mark.parametrize(
    "body",
    [
        # spa_ctl in the background: the beat stays every 0.3 s however slow one call is.
        "while :; do spa_ctl heartbeat >/dev/null & sleep 0.3; done\n",
        "while :; do echo tick; sleep 0.3; done\n",
    ],
    ids=["heartbeat", "output"],
)
def test_a_task_that_beats_or_speaks_keeps_running(server: Server, body: str) -> None:
    server.script("alive", body)
    # 2 s: a spa_ctl started by the task may take over a second to start on a loaded machine.
    server.define("w", task("t", "alive", idle_timeout=2, stop_timeout=1, retries=0))
    server.call("run", workflow="w")
    server.wait_task("w", "t", "running")
    # Three idle periods: each deadline found a newer sign of life and moved on.
    wait_for(lambda: seconds(server.task("w", "t")["started_at"], _now()) > 6, what="three periods")
    t = server.task("w", "t")
    assert (t["status"], t["attempt"]) == ("running", 1)
    server.call("stop", workflow="w")
    assert server.wait_status("w", "stopped")["tasks"][0]["status"] == "stopped"


def test_heartbeat_of_a_task_that_is_not_running_is_a_conflict(server: Server) -> None:
    server.define("w", task("t", "simple", "0"))
    with pytest.raises(ServerError) as refused:
        server.call("heartbeat", workflow="w", task="t")
    assert refused.value.code == -32002
    assert "is not running task 't'" in refused.value.message


def _now() -> str:
    return datetime.now().astimezone().isoformat()
