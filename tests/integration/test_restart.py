"""``restart``: a graceful stop, then a new run once the old one ended."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from spad import procs
from spad.cli.client import ServerError
from tests.conftest import Server, task, wait_for


def runs_of(server: Server, workflow: str) -> list[int]:
    return [run["run_id"] for run in server.call("history", workflow=workflow)["runs"]]


def test_a_restart_that_could_not_start_again_stops_nothing(server: Server) -> None:
    """Refused as ``run`` would refuse it, before the stop: the workflow was left stopped."""
    server.script("mytool", "echo started\nsleep 60\n")
    server.define("w", task("t", "mytool"))
    server.call("run", workflow="w")
    server.wait_task("w", "t", "running")
    # Removed only once bash has opened it: env, then bash, open the script after the exec.
    wait_for(lambda: "started" in server.call("logs", workflow="w", task="t"), what="the tool")
    (server.home / "bin" / "mytool").unlink()
    with pytest.raises(ServerError, match="no executable mytool") as refused:
        server.call("restart", workflow="w")
    assert refused.value.code == -32004  # invalid: nothing was done
    assert server.status("w")["status"] == "running"
    assert server.task("w", "t")["status"] == "running"
    server.call("stop", workflow="w", force=True)
    server.wait_status("w", "stopped")


def test_a_stop_after_a_restart_calls_the_restart_off(server: Server) -> None:
    """The later request wins, as a systemd stop job replaces a pending restart."""
    server.define("w", task("t", "stubborn", "60", stop_timeout=5))
    first = server.call("run", workflow="w")["run_id"]
    server.wait_trapped("w", "t")  # a SIGTERM before the trap would end the run at once
    runner = server.db().execute("SELECT runner_pid FROM runs WHERE id = ?", (first,))
    runner_pid = int(runner.fetchone()[0])
    identity = procs.identity(runner_pid)
    assert server.call("restart", workflow="w")["run_id"] is None  # after the stop ends
    server.call("stop", workflow="w", force=True)
    server.wait_status("w", "stopped")
    wait_for(lambda: not procs.is_alive(runner_pid, identity), what="the runner to end")
    # The server starts a pending restart as it handles the runner's end: two requests in a
    # row are answered after its event loop went round at least once since that end.
    server.call("list")
    assert runs_of(server, "w") == [first]


@pytest.mark.parametrize("ended_while_down", [False, True])
def test_a_restart_asked_survives_a_restart_of_spad(
    make_server: Callable[..., Server], ended_while_down: bool
) -> None:
    """It was kept in the server's memory: killed before the run ended, spad left the workflow
    stopped for good. The run ends under the new server (adopted), or before it starts."""
    server = make_server().start()
    server.define("w", task("t", "stubborn", "60", stop_timeout=2))
    first = server.call("run", workflow="w")["run_id"]
    server.wait_trapped("w", "t")  # so that the run is still stopping when spad is killed
    assert server.call("restart", workflow="w")["run_id"] is None  # after the stop ends
    server.stop(signal.SIGKILL)  # the runner goes on stopping its task, and ends the run
    if ended_while_down:
        finished = "SELECT finished FROM runs WHERE id = ?"
        wait_for(lambda: server.db().execute(finished, (first,)).fetchone()[0] == 1)
    server.start()
    wait_for(
        lambda: len(runs_of(server, "w")) == 2 and server.status("w")["status"] == "running",
        timeout=30,
        what="the workflow started again by the new server",
    )
    assert runs_of(server, "w")[-1] == first  # history lists the newest first
    server.call("stop", workflow="w", force=True)
    server.wait_status("w", "stopped")
