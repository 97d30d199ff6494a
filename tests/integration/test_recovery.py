"""Recovery: a power cut, a server-only crash, a stop cut short; runners adopted, not doubled."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Server, task, tree, wait_for


def setup_three(server: Server) -> dict[str, int]:
    """``long`` keeps running, ``done`` finishes, ``stopped`` is stopped: only ``long`` is
    unfinished."""
    server.call(
        "create",
        **tree(
            [
                {
                    "name": "long",
                    "tasks": [
                        task("bg", "simple", "60", exec="parallel"),
                        task("fg", "simple", "60"),
                    ],
                },
                {"name": "done", "tasks": [task("quick", "simple", "0")]},
                {"name": "stopped", "tasks": [task("s", "simple", "60")]},
            ]
        ),
    )
    runs = {
        name: server.call("run", workflow=name)["run_id"] for name in ("long", "done", "stopped")
    }
    server.wait_status("done", "success0")
    server.wait_task("stopped", "s", "running")
    server.call("stop", workflow="stopped")
    server.wait_status("stopped", "stopped")
    wait_for(lambda: all(t["status"] == "running" for t in server.status("long")["tasks"]))
    return runs


def test_power_loss_resumes_only_the_unfinished(make_server: Callable[..., Server]) -> None:
    before = make_server().start()
    runs = setup_three(before)
    old_pids = [t["pid"] for t in before.status("long")["tasks"]]
    before.kill_everything()  # the power cut: server, runners and tasks die at once
    after = make_server().start()
    state = wait_for(
        lambda: (
            (s := after.status("long"))["run_id"] != runs["long"]
            and all(t["status"] == "running" for t in s["tasks"])
            and s
        ),
        what="the unfinished workflow to run again",
    )
    assert {t["pid"] for t in state["tasks"]}.isdisjoint(old_pids)
    assert after.status("done")["run_id"] == runs["done"]
    assert after.status("done")["status"] == "success0"
    assert after.status("stopped")["run_id"] == runs["stopped"]
    assert after.status("stopped")["status"] == "stopped"
    resumed = (
        after.db()
        .execute("SELECT resumed_from FROM runs WHERE id = ?", (state["run_id"],))
        .fetchone()[0]
    )
    assert resumed == runs["long"]


def test_a_server_crash_adopts_the_live_runner(make_server: Callable[..., Server]) -> None:
    before = make_server().start()
    runs = setup_three(before)
    pids = [t["pid"] for t in before.status("long")["tasks"]]
    assert before.process is not None
    before.process.kill()  # only the server dies
    before.process.wait()
    after = make_server().start()
    state = after.status("long")
    assert (state["run_id"], state["status"]) == (runs["long"], "running")
    assert [t["pid"] for t in state["tasks"]] == pids
    count = after.db().execute("SELECT count(*) FROM runs").fetchone()[0]
    assert count == 3, "a runner was started again beside the adopted one"
    after.call("stop", workflow="long")
    final = after.wait_status("long", "stopped")
    assert [t["status"] for t in final["tasks"]] == ["stopped", "stopped"]


def test_an_adopted_runner_that_dies_is_resumed(make_server: Callable[..., Server]) -> None:
    import os
    import signal

    before = make_server().start()
    runs = setup_three(before)
    assert before.process is not None
    before.process.kill()
    before.process.wait()
    after = make_server().start()
    pid = (
        after.db()
        .execute("SELECT runner_pid FROM runs WHERE id = ?", (runs["long"],))
        .fetchone()[0]
    )
    os.kill(pid, signal.SIGKILL)
    state = wait_for(
        lambda: (s := after.status("long"))["run_id"] != runs["long"] and s,
        what="a new run after the adopted runner died",
    )
    assert state["status"] == "running"


def test_a_workflow_stopping_at_the_cut_ends_stopped(make_server: Callable[..., Server]) -> None:
    before = make_server().start()
    before.call(
        "create", **tree([{"name": "w", "tasks": [task("t", "stubborn", "60", stop_timeout=60)]}])
    )
    run_id = before.call("run", workflow="w")["run_id"]
    before.wait_task("w", "t", "running")
    before.wait_trapped("w", "t")
    before.call("stop", workflow="w")
    before.wait_task("w", "t", "stopping")
    before.kill_everything()
    after = make_server().start()
    state = after.wait_status("w", "stopped")
    assert state["run_id"] == run_id
    assert after.db().execute("SELECT count(*) FROM runs").fetchone()[0] == 1
