"""What an operator types without thinking: options anywhere, a workflow named first, restart,
history, every task's logs, tables that fit 80 columns, local times, retention."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable

import pytest

from spad.cli.client import ServerError
from tests.conftest import EXAMPLE, VENV_BIN, Server, clean_env, task, wait_for
from tests.e2e.test_cli import as_json, ok, refused, spa_ctl


def test_json_anywhere_on_the_line(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    after = json.loads(ok(server, "status", "-w", "wf1", "--json"))
    before = json.loads(ok(server, "--json", "status", "-w", "wf1"))
    assert after == before and after["workflow"] == "wf1"
    assert json.loads(ok(server, "alarms", "--json")) == {"alarms": []}
    assert json.loads(ok(server, "list", "--utc", "--json"))["projects"][0]["name"] == "pr1"
    result = spa_ctl(None, "list", "--url", server.url, "--token", server.token)
    assert result.returncode == 0, result.stderr


def test_a_workflow_named_first_and_restart(server: Server) -> None:
    server.define("w", task("a", "simple", "60"))
    assert "started w: run 1" in ok(server, "run", "w")
    server.wait_task("w", "a", "running")
    assert "pr1/w: running" in ok(server, "status", "w")
    out = ok(server, "restart", "w")
    assert "restarted w: run 2" in out
    assert server.db().execute("SELECT status FROM runs WHERE id = 1").fetchone()[0] == "stopped"
    server.wait_task("w", "a", "running")
    assert "w: stopped" in ok(server, "stop", "w", "--wait")
    assert "restarted w: run 3" in ok(server, "restart", "-w", "w")  # not running: just runs
    ok(server, "stop", "w", "--wait")
    assert "two workflows" in refused(spa_ctl(server, "run", "w", "-w", "v"), 2)


def test_status_without_a_workflow_lists_the_project(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    ok(server, "create", "-j", '{"project": {"name": "other", "workflows": [{"name": "o1"}]}}')
    ok(server, "select_project", "pr1")
    out = ok(server, "status")
    assert re.search(r"^wf1\s+not run", out, re.M) and re.search(r"^wf2\s+not run", out, re.M)
    assert "o1" not in out
    assert "o1" in ok(server, "status", "-p", "other")


def test_version() -> None:
    result = spa_ctl(None, "--version")
    assert result.returncode == 0
    assert re.match(r"spa_ctl \(spad\) \d+\.\d+", result.stdout), result.stdout


def test_status_of_the_seeds_wf2_fits_80_columns(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    server.call("run", workflow="wf2")
    server.wait_status("wf2", lambda s: s not in ("running", "stopping"))
    narrow = spa_ctl(server, "status", "wf2", env={"COLUMNS": "80"}).stdout
    lines = narrow.splitlines()
    assert all(len(line) <= 80 for line in lines), narrow
    state = server.status("wf2")
    for row in state["tasks"]:
        assert re.search(rf"\b{row['name']}\s+{re.escape(row['status'])}(\s|$)", narrow), narrow
    assert "--wide shows them" in narrow
    wide = spa_ctl(server, "status", "wf2", "--wide", env={"COLUMNS": "80"}).stdout
    assert "STARTED" in wide and "ENDED" in wide and "--wide" not in wide
    listing = spa_ctl(server, "list", env={"COLUMNS": "80"}).stdout
    assert all(len(line) <= 80 for line in listing.splitlines()), listing


def test_times_are_local_with_their_zone_and_utc_on_demand(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    server.call("run", workflow="wf2")
    server.wait_status("wf2", lambda s: s not in ("running", "stopping"))
    tokyo = spa_ctl(server, "status", "wf2", "--wide", env={"TZ": "Asia/Tokyo"}).stdout
    assert " JST" in tokyo and " UTC" not in tokyo
    utc = spa_ctl(server, "status", "wf2", "--wide", "--utc", env={"TZ": "Asia/Tokyo"}).stdout
    assert " UTC" in utc and " JST" not in utc
    state = as_json(server, "status", "wf2")
    assert state["started_at"].endswith("Z")


def test_a_task_failing_in_a_loop_does_not_look_healthy(server: Server) -> None:
    server.define(
        "w",
        task("fine", "simple", "60", exec="parallel"),
        task("loop", "error", "1", retries=-1, retry_delay=0.2),
    )
    server.call("run", workflow="w")

    def looping() -> dict[str, object] | None:
        row = server.task("w", "loop")
        return row if row["restarts"] >= 2 and row["status"] == "rerun" else None

    row = wait_for(looping, what="the task to fail twice and wait to restart")
    assert row["next_attempt_at"] and row["since"]
    assert row["next_attempt_at"] >= row["since"]
    assert server.task("w", "fine")["restarts"] == 0
    listing = server.call("list")["projects"][0]["workflows"][0]
    assert listing["restarts"] >= 2 and listing["started_at"]
    out = ok(server, "status", "w")
    line = next(line for line in out.splitlines() if line.split()[1:2] == ["loop"])
    assert re.search(r"\b(rerun|running|error\(1\))\b", line)
    assert "RESTARTS" in out and "FOR" in out
    server.call("stop", workflow="w", force=True)
    server.wait_status("w", "stopped")
    assert server.task("w", "loop")["next_attempt_at"] is None


def test_history_and_a_past_runs_status(server: Server) -> None:
    server.define("w", task("a", "simple", "60"))
    server.call("run", workflow="w")
    server.wait_task("w", "a", "running")
    ok(server, "stop", "w", "--wait")
    server.define("q", task("b", "simple"))
    server.call("run", workflow="q")
    server.wait_status("q", "success0")
    server.call("run", workflow="w")
    server.wait_task("w", "a", "running")
    runner = server.db().execute("SELECT runner_pid FROM runs WHERE id = 3").fetchone()[0]
    os.kill(runner, signal.SIGKILL)
    wait_for(lambda: server.status("w")["run_id"] == 4, what="the run to be resumed")
    runs = server.call("history", workflow="w")["runs"]
    assert [(r["run_id"], r["ended_by"], r["resumed_from"]) for r in runs] == [
        (4, None, 3),
        (3, "crashed", None),
        (1, "stopped", None),
    ]
    assert server.call("history", workflow="q")["runs"][0]["ended_by"] == "finished"
    out = ok(server, "history", "w")
    assert re.search(r"^\s*3\s+\S+\s+crashed", out, re.M), out
    assert re.search(r"^\s*1\s+stopped\s+stopped", out, re.M), out
    past = as_json(server, "status", "w", "-r", "1")
    assert past["run_id"] == 1 and past["status"] == "stopped"
    assert "run 1" in ok(server, "status", "w", "-r", "1")
    assert "has no run 2" in refused(spa_ctl(server, "status", "w", "-r", "2"), 1)
    ok(server, "stop", "w", "--wait")


def test_logs_of_every_task_prefixed_and_followed(server: Server) -> None:
    server.script("say", 'for i in 1 2 3; do echo "$1 $i"; sleep 0.1; done\n')
    server.define(
        "w",
        task("first", "say", "one", exec="parallel"),
        task("second-task", "say", "two"),
    )
    server.call("run", workflow="w")
    follow = subprocess.run(
        [str(VENV_BIN / "spa_ctl"), "logs", "w", "-f"],
        capture_output=True,
        text=True,
        env=clean_env(SPA_URL=server.url, SPA_HOME=str(server.home)),
        timeout=60,
        check=False,
    )
    assert follow.returncode == 0, follow.stderr
    followed = follow.stdout.splitlines()
    assert sorted(followed) == sorted(
        [f"first       | one {i}" for i in (1, 2, 3)]
        + [f"second-task | two {i}" for i in (1, 2, 3)]
    )
    server.wait_status("w", "success0")
    whole = ok(server, "logs", "-w", "w").splitlines()
    assert whole == [f"first       | one {i}" for i in (1, 2, 3)] + [
        f"second-task | two {i}" for i in (1, 2, 3)
    ]
    assert ok(server, "logs", "w", "-n", "1").splitlines() == [
        "first       | one 3",
        "second-task | two 3",
    ]


def test_retention_keeps_the_newest_runs(make_server: Callable[..., Server]) -> None:
    spad = make_server()
    spad.home.mkdir(parents=True)
    (spad.home / "spad.toml").write_text("[retention]\nruns = 2\n")
    spad.start()
    spad.define("w", task("a", "simple"))
    for expected in range(1, 5):
        assert spad.call("run", workflow="w")["run_id"] == expected
        spad.wait_status("w", "success0")
    assert [r["run_id"] for r in spad.call("history", workflow="w")["runs"]] == [4, 3]
    folders = sorted(p.name for p in (spad.home / "logs" / "pr1" / "w").iterdir())
    assert folders == ["3", "4"]


def test_too_little_disk_refuses_a_run_and_raises_an_alarm(
    make_server: Callable[..., Server],
) -> None:
    spad = make_server()
    spad.home.mkdir(parents=True)
    (spad.home / "spad.toml").write_text('[retention]\ndisk_min_free = "1000000T"\n')
    spad.start()
    spad.define("w", task("a", "simple"))
    message = refused(spa_ctl(spad, "run", "w"), 1)
    assert "disk_min_free" in message and "free" in message
    assert spad.status("w")["run_id"] is None
    alarm = wait_for(lambda: spad.call("alarms_list")["alarms"], what="the disk alarm")[0]
    assert (alarm["kind"], alarm["source"]) == ("disk", "spad")


def test_a_bad_retention_setting_stops_the_start(make_server: Callable[..., Server]) -> None:
    spad = make_server()
    spad.home.mkdir(parents=True)
    (spad.home / "spad.toml").write_text('[retention]\ndisk_min_free = "lots"\n')
    with pytest.raises(AssertionError, match="disk_min_free"):
        spad.start()


def test_create_warns_of_a_missing_executable(server: Server) -> None:
    result = spa_ctl(
        server,
        "create",
        "-j",
        '{"project": {"name": "pr1", "workflows": [{"name": "w", "tasks":'
        ' [{"name": "a", "function": "notyet"}]}]}}',
    )
    assert result.returncode == 0
    assert "warning: no executable notyet in bin/" in result.stderr
    assert "created in project pr1" in result.stdout


def test_the_small_ones(server: Server) -> None:
    server.define("w", task("a", "echo", "report ready"), task("b", "echo", "report", "ready"))
    out = ok(server, "status", "w", "--wide")
    assert "'report ready'" in out and re.search(r"[^']report ready\b", out)
    ok(server, "run", "w")
    audit = ok(server, "audit").splitlines()
    assert audit[0].split()[:4] == ["AT", "CLIENT", "METHOD", "OUTCOME"]
    assert server.stderr_path is not None
    log = server.stderr_path.read_text()
    assert "spad serving" in log and "spad spad" not in log
    bare = server.url.removeprefix("http://")
    message = refused(spa_ctl(None, "--url", bare, "list"), 2)
    assert f"http://{bare}" in message
    assert "_SPA_CTL_COMPLETE" in ok(server, "--help")


def test_completion_names_the_servers_workflows(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    env = clean_env(
        SPA_URL=server.url,
        SPA_HOME=str(server.home),
        _SPA_CTL_COMPLETE="bash_complete",
        COMP_WORDS="spa_ctl run wf",
        COMP_CWORD="2",
    )
    result = subprocess.run(
        [str(VENV_BIN / "spa_ctl")], capture_output=True, text=True, env=env, check=False
    )
    assert "wf1" in result.stdout and "wf2" in result.stdout, result


def test_unknown_run_in_rpc_is_not_found(server: Server) -> None:
    server.define("w", task("a", "simple"))
    with pytest.raises(ServerError) as raised:
        server.call("status", workflow="w", run_id=5)
    assert raised.value.data["kind"] == "not_found"


def test_a_bad_alarm_source_is_said_in_spads_log_and_by_alarms(
    make_server: Callable[..., Server],
) -> None:
    spad = make_server()
    spad.home.mkdir(parents=True)
    (spad.home / "spad.toml").write_text(
        '[[alarms.sources]]\nname = "lab"\ndsn = "sqlite:///missing.db"\ntable = "found"\n'
    )
    spad.start()
    assert spad.stderr_path is not None
    log = spad.stderr_path
    wait_for(lambda: "source lab is away" in log.read_text(), what="spad's log to say so")
    wait_for(lambda: "source_away.lab" in ok(spad, "alarms"), what="spa_ctl alarms to say so")
