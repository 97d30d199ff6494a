"""``memory_max``: the kernel's memory cgroup ends a task past its limit; the others go on."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Callable

import pytest

from spad import cgroups
from spad.cli.client import ServerError
from tests.conftest import VENV_BIN, Server, clean_env, task, wait_for

HOG = """exec python3 -c '
import sys
held = []
while True:  # 1 MiB more each turn, every page written: resident, not just reserved
    held.append(b"x" * (1 << 20))
'
"""


def log_of(server: Server, workflow: str, name: str) -> str:
    try:
        return str(server.call("logs", workflow=workflow, task=name))
    except ServerError:  # no output yet
        return ""


def cgroups_or_skip() -> cgroups.Hierarchy:
    try:
        return cgroups.detect()
    except cgroups.Unavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no usable memory cgroup here: {exc}")


def test_a_task_past_memory_max_is_killed_and_reported(server: Server) -> None:
    hierarchy = cgroups_or_skip()
    server.script("hog", HOG)
    server.define("calm", task("c", "simple", "3600"))
    server.define("w", task("t", "hog", memory_max="64M", retries=0))
    server.call("run", workflow="calm")
    server.wait_task("calm", "c", "running")
    run_id = server.call("run", workflow="w")["run_id"]
    state = server.wait_status("w", "terminated(-9)")
    assert state["tasks"][0]["status"] == "terminated(-9)"
    log = server.call("logs", workflow="w", task="t")
    assert "spad: memory limit" in log and "memory_max (67108864 bytes)" in log
    assert "memory limit" in (server.home / "logs" / "runners.log").read_text()
    ended = server.call("events", workflow="w", task="t", run_id=run_id)["events"][-1]
    assert (ended["status"], ended["reason"]) == ("terminated(-9)", "memory limit")
    # The other workflow was not touched.
    calm = server.task("calm", "c")
    assert (calm["status"], calm["attempt"]) == ("running", 1)
    assert not glob.glob(os.path.join(hierarchy.base, f"{cgroups.TASK_PREFIX}*.{run_id}.t.1"))
    server.call("stop", workflow="calm")
    server.wait_status("calm", "stopped")


def test_a_task_under_its_limit_runs_as_usual(server: Server) -> None:
    cgroups_or_skip()
    server.define("w", task("t", "simple", "0", memory_max=64 << 20))
    server.call("run", workflow="w")
    assert server.wait_status("w", "success0")["tasks"][0]["status"] == "success0"


def test_run_refuses_memory_max_where_no_cgroup_can_be_used(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(SPAD_TEST_NO_CGROUP="1").start()
    server.define("w", task("t", "simple", "0", memory_max="512M"), task("u", "simple", "0"))
    with pytest.raises(ServerError) as refused:
        server.call("run", workflow="w")
    assert refused.value.code == -32004
    assert "memory_max is set on t, but memory cgroups are turned off" in refused.value.message
    assert server.status("w")["status"] == "not run"
    server.define("plain", task("u", "simple", "0"))
    server.call("run", workflow="plain")  # a task without a limit runs all the same
    server.wait_status("plain", "success0")


def test_status_shows_each_running_task_s_memory(server: Server) -> None:
    # 32 MiB written, held in a child of the task: the task's memory counts its descendants.
    server.script(
        "holder",
        'python3 -c \'import time; held = b"x" * (32 << 20); print("held", flush=True);'
        " time.sleep(3600)'\n",
    )
    server.define("w", task("t", "holder"), task("done", "simple", "0", exec="parallel", place=1))
    server.call("run", workflow="w")
    wait_for(lambda: "held" in log_of(server, "w", "t"), what="the task to hold 32 MiB")
    server.wait_task("w", "done", "success0")
    rows = {t["name"]: t for t in server.call("status", workflow="w", memory=True)["tasks"]}
    assert rows["t"]["memory"] >= 32 << 20
    assert rows["done"]["memory"] is None  # ended: no memory to show
    assert server.task("w", "t")["memory"] is None  # not asked: /proc is not read
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")
    assert server.call("status", workflow="w", memory=True)["tasks"][1]["memory"] is None


def test_status_shows_each_running_task_s_memory_when_asked(server: Server) -> None:
    # 32 MiB written, held in a child of the task: the task's memory counts its descendants.
    server.script(
        "holder",
        'python3 -c \'import time; held = b"x" * (32 << 20); print("held", flush=True);'
        " time.sleep(3600)'\n",
    )
    server.define("w", task("t", "holder"), task("done", "simple", "0", exec="parallel", place=1))
    server.call("run", workflow="w")
    wait_for(lambda: "held" in log_of(server, "w", "t"), what="the task to hold 32 MiB")
    server.wait_task("w", "done", "success0")
    rows = {t["name"]: t for t in server.call("status", workflow="w", memory=True)["tasks"]}
    assert rows["t"]["memory"] >= 32 << 20
    assert rows["done"]["memory"] is None  # ended: no memory to show
    assert server.task("w", "t")["memory"] is None  # not asked: /proc is not read
    shown = subprocess.run(
        [str(VENV_BIN / "spa_ctl"), "status", "w", "--wide"],
        capture_output=True,
        text=True,
        env=clean_env(SPA_URL=server.url, SPA_HOME=str(server.home)),
        check=True,
    ).stdout
    lines = shown.splitlines()
    assert lines[2].endswith("MEMORY")
    assert next(line for line in lines if " holder " in line).endswith("M")  # e.g. 35.2M
    server.call("stop", workflow="w")
    server.wait_status("w", "stopped")
    assert server.call("status", workflow="w", memory=True)["tasks"][1]["memory"] is None
