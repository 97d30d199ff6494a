"""``status`` asked again and again (its answer kept while spa.db is unchanged) shows each
change at once, whoever made it: the runner, the server, another process."""

from __future__ import annotations

from tests.conftest import Server, task, tree


def test_a_polled_status_shows_the_runners_change_at_once(server: Server) -> None:
    go = server.home / "data" / "go"
    server.script("gate", f'while [ ! -e "{go}" ]; do sleep 0.01; done\n')
    server.define("w", task("t", "gate"))
    server.call("run", workflow="w")
    server.wait_task("w", "t", "running")
    polled = [server.status("w")["tasks"][0]["status"] for _ in range(20)]  # kept answers
    assert polled == ["running"] * 20
    go.touch()
    done = server.wait_status("w", "success0")
    assert done["tasks"][0]["status"] == "success0"
    assert done["tasks"][0]["ended_at"] is not None


def test_a_polled_status_shows_the_servers_own_change_at_once(server: Server) -> None:
    server.define("w", task("a"))
    before = server.status("w")
    assert [t["name"] for t in before["tasks"]] == ["a"]
    server.call("create", **tree([{"name": "w", "tasks": [task("b")]}]))
    assert [t["name"] for t in server.status("w")["tasks"]] == ["a", "b"]


def test_a_polled_status_shows_another_processs_write_at_once(server: Server) -> None:
    server.define("w", task("a"))
    server.call("run", workflow="w")
    run = server.wait_status("w", "success0")
    assert server.status("w")["status"] == "success0"
    with server.db() as conn:  # an operator's repair, a migration tool: another connection
        conn.execute(
            "UPDATE runs SET ended_at = '2000-01-01T00:00:00' WHERE id = ?", (run["run_id"],)
        )
    assert server.status("w")["ended_at"] == "2000-01-01T00:00:00"  # the very next answer
