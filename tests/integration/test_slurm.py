"""The slurm executor on a real single-node Slurm cluster (scripts/slurm-cluster)."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spad.cli.client import ServerError
from spad.executors.slurm_jobs import attempt_tag, home_key, run_prefix, run_tag
from tests.conftest import REPO, VENV_BIN, Server, clean_env, seed, task, tree, wait_for

#: The first test to use the cluster may wait for apt-get to install Slurm.
pytestmark = pytest.mark.timeout(600)

#: A bash task that traps SIGTERM, says so, and ends 0 from its trap.
TRAPPER = 'trap "echo trapped; exit 0" TERM\necho ready\nsleep 300 &\nwait\n'
SLURM_TOML = "[slurm]\npoll_interval = 0.2\ncommand_timeout = 10\n"


@pytest.fixture
def slurm(slurm_cluster: Any, home: Path, make_server: Callable[..., Server]) -> Iterator[Server]:
    """A spad server whose home has Slurm configured; its jobs cancelled at the end."""
    home.mkdir(parents=True)
    (home / "spad.toml").write_text(SLURM_TOML)
    server = make_server(**slurm_cluster.env).start()
    try:
        yield server
    finally:
        server.kill_everything()
        cancel_jobs(slurm_cluster, home)


def cancel_jobs(cluster: Any, home: Path) -> None:
    prefix = f"spad-{home_key(str(home))}-"
    for job, _, _ in cluster.jobs(prefix):
        cluster.command("scancel", "--signal=KILL", "--full", job)
        cluster.command("scancel", job)


def trapper(server: Server) -> None:
    server.script("trapper", TRAPPER)


def run_trapper(server: Server) -> int:
    """Run workflow ``w`` of one trapping task ``t`` on Slurm; its run id once it runs."""
    trapper(server)
    server.define("w", task("t", "trapper"), executor="slurm")
    run_id: int = server.call("run", workflow="w")["run_id"]
    server.wait_task("w", "t", "running")
    return run_id


def logged(server: Server, workflow: str, name: str, text: str) -> bool:
    try:
        return text in str(server.call("logs", project="pr1", workflow=workflow, task=name))
    except ServerError:
        return False


def on_slurm(definition: dict[str, Any]) -> dict[str, Any]:
    """The seed's tree with every workflow renamed ``<name>s`` and run on Slurm."""
    tree_copy = copy.deepcopy(definition)
    for wf in tree_copy["context"]["project"]["workflows"]:
        wf["name"] += "s"
        wf["executor"] = "slurm"
        wf.pop("id")
        for t in wf["tasks"]:
            t.pop("id")
    return tree_copy


def outcome(state: dict[str, Any]) -> tuple[str, list[tuple[str, str, int | None, int]]]:
    return state["status"], [
        (t["name"], t["status"], t["exit_code"], t["attempt"]) for t in state["tasks"]
    ]


def test_the_seed_workflows_end_on_slurm_as_they_do_locally(slurm: Server) -> None:
    slurm.call("create", **seed())
    slurm.call("create", **on_slurm(seed()))
    for wf in ("wf1", "wf2"):
        slurm.call("run", project="pr1", workflow=wf)
        slurm.call("run", project="pr1", workflow=wf + "s")
    for wf in ("wf1", "wf2"):
        local = slurm.wait_status(wf, lambda s: s not in ("running", "stopping"))
        remote = slurm.wait_status(wf + "s", lambda s: s not in ("running", "stopping"))
        assert outcome(remote) == outcome(local)
        assert remote["status"] == "success0"
        for row in remote["tasks"]:
            assert row["executor"] == "slurm"
            assert row["job"] is not None and row["job"].isdigit()
            assert row["pid"] is None
        assert all(row["executor"] == "local" and row["job"] is None for row in local["tasks"])
    assert logged(slurm, "wf2s", "t21", "hello from wf2")


def test_a_trapping_task_stopped_gracefully_ends_stopped_with_its_trap_run(slurm: Server) -> None:
    trapper(slurm)
    slurm.define("w", task("t", "trapper", stop_timeout=30), executor="slurm")
    slurm.call("run", workflow="w")
    slurm.wait_task("w", "t", "running")
    wait_for(lambda: logged(slurm, "w", "t", "ready"), what="the trap to be set")
    slurm.call("stop", workflow="w")
    state = slurm.wait_status("w", "stopped")
    assert state["tasks"][0]["status"] == "stopped"
    wait_for(lambda: logged(slurm, "w", "t", "trapped"), what="the trap's line in the log")


def test_a_task_exiting_3_ends_error_3_after_its_retry(slurm: Server) -> None:
    slurm.define("w", task("t", "error", "3", retries=1, retry_delay=0.1, executor="slurm"))
    slurm.call("run", workflow="w")
    state = slurm.wait_status("w", "error(3)")
    row = state["tasks"][0]
    assert (row["status"], row["exit_code"], row["attempt"]) == ("error(3)", 3, 2)
    assert row["executor"] == "slurm"


def test_a_job_killed_by_a_signal_ends_terminated(slurm: Server) -> None:
    slurm.script("suicide", "kill -9 $$\n")
    slurm.define("w", task("t", "suicide", retries=0, executor="slurm"))
    slurm.call("run", workflow="w")
    state = slurm.wait_status("w", "terminated(-9)")
    assert state["tasks"][0]["status"] == "terminated(-9)"


def test_the_slurm_jobs_carry_their_tag(slurm: Server, slurm_cluster: Any) -> None:
    run_id = run_trapper(slurm)
    row = slurm.task("w", "t")
    jobs = slurm_cluster.jobs(run_prefix(str(slurm.home), run_id))
    assert [(job, name) for job, name, _ in jobs] == [
        (row["job"], f"{run_prefix(str(slurm.home), run_id)}a1-t")
    ]
    slurm.call("stop", workflow="w", force=True)
    assert slurm.wait_status("w", "stopped")["tasks"][0]["status"] == "killed"


def test_a_forced_stop_cancels_at_once(slurm: Server) -> None:
    slurm.script("deaf", "trap '' TERM\necho deaf\nsleep 300 &\nwait\nwait\nwait\n")
    slurm.define("w", task("t", "deaf", stop_timeout=300), executor="slurm")
    slurm.call("run", workflow="w")
    slurm.wait_task("w", "t", "running")
    wait_for(lambda: logged(slurm, "w", "t", "deaf"), what="the trap to be set")
    slurm.call("stop", workflow="w", force=True)
    state = slurm.wait_status("w", "stopped", timeout=20)
    assert state["tasks"][0]["status"] == "killed"


def test_run_on_slurm_without_a_slurm_section_is_invalid(
    slurm_cluster: Any, home: Path, make_server: Callable[..., Server]
) -> None:
    server = make_server(**slurm_cluster.env).start()
    server.define("w", task("t", "simple"), executor="slurm")
    with pytest.raises(ServerError) as caught:
        server.call("run", workflow="w")
    assert caught.value.code == -32000 + 0 or caught.value.data["kind"] == "invalid"
    assert "[slurm]" in caught.value.message and "spad.toml" in caught.value.message
    assert server.status("w")["status"] == "not run"


def test_run_on_slurm_where_it_is_not_installed_is_invalid(
    home: Path, make_server: Callable[..., Server]
) -> None:
    home.mkdir(parents=True)
    (home / "spad.toml").write_text("[slurm]\n")
    empty = home.parent / "empty"
    empty.mkdir()
    server = make_server(PATH=str(empty)).start()  # no sbatch on this PATH
    server.define("w", task("t", "simple"), executor="slurm")
    with pytest.raises(ServerError) as caught:
        server.call("run", workflow="w")
    assert caught.value.data["kind"] == "invalid"
    assert "not installed" in caught.value.message and "sbatch" in caught.value.message


def test_a_task_may_choose_slurm_in_a_local_workflow(slurm: Server) -> None:
    slurm.call(
        "create",
        **tree(
            [
                {
                    "name": "w",
                    "tasks": [
                        task("here", "simple"),
                        task("there", "simple", executor="slurm", slurm_args=["--time=5"]),
                    ],
                }
            ]
        ),
    )
    state = slurm.wait_status("w", "not run")
    assert [t["executor"] for t in state["tasks"]] == ["local", "slurm"]
    slurm.call("run", workflow="w")
    state = slurm.wait_status("w", "success0")
    assert [(t["executor"], t["status"]) for t in state["tasks"]] == [
        ("local", "success0"),
        ("slurm", "success0"),
    ]
    dumped = slurm.call("dump", project="pr1", workflow="w")
    tasks = dumped["context"]["project"]["workflows"][0]["tasks"]
    assert tasks[1]["executor"] == "slurm" and tasks[1]["slurm_args"] == ["--time=5"]


def test_queued_shows_while_the_cluster_is_full_then_the_job_runs(
    slurm: Server, slurm_cluster: Any
) -> None:
    blocker = slurm_cluster.command(
        "sbatch", "--parsable", "--licenses=slot:1", "--output=/dev/null", "--wrap=sleep 300"
    )
    assert blocker.returncode == 0, blocker.stderr
    job = blocker.stdout.strip()
    try:
        wait_for(
            lambda: (
                "RUNNING" in slurm_cluster.command("squeue", "-h", "-j", job, "-o", "%T").stdout
            ),
            what="the job holding the slot to run",
        )
        slurm.define(
            "w", task("t", "simple", "0", executor="slurm", slurm_args=["--licenses=slot:1"])
        )
        slurm.call("run", workflow="w")
        wait_for(lambda: slurm.task("w", "t")["job"] is not None, what="the job id to be recorded")
        assert slurm.task("w", "t")["status"] == "queued"
        wait_for(
            lambda: slurm_cluster.jobs(run_prefix(str(slurm.home), slurm.status("w")["run_id"])),
            what="the job to be in the queue",
        )
        assert slurm.task("w", "t")["status"] == "queued"
    finally:
        slurm_cluster.command("scancel", job)
    state = slurm.wait_status("w", "success0")
    assert state["tasks"][0]["status"] == "success0"


def test_a_queued_task_stopped_is_cancelled_and_ends_stopped(
    slurm: Server, slurm_cluster: Any
) -> None:
    slurm.define("w", task("t", "simple", executor="slurm", slurm_args=["--hold"]))
    run_id = slurm.call("run", workflow="w")["run_id"]
    slurm.wait_task("w", "t", lambda s: s == "queued" and bool(slurm.task("w", "t")["job"]))
    slurm.call("stop", workflow="w")
    state = slurm.wait_status("w", "stopped")
    assert state["tasks"][0]["status"] == "stopped"
    jobs = slurm_cluster.jobs(run_prefix(str(slurm.home), run_id))
    assert [state for _, _, state in jobs] == ["CANCELLED"]


def runner_of(server: Server, run_id: int) -> int:
    row = server.db().execute("SELECT runner_pid FROM runs WHERE id = ?", (run_id,)).fetchone()
    return int(row[0])


def test_a_dead_runner_s_jobs_are_cancelled_and_the_workflow_resumes(
    slurm: Server, slurm_cluster: Any
) -> None:
    first = run_trapper(slurm)
    os.kill(runner_of(slurm, first), signal.SIGKILL)
    state = slurm.wait_status("w", lambda s: slurm.status("w")["run_id"] != first)
    second = state["run_id"]
    slurm.wait_task("w", "t", "running")
    wait_for(
        lambda: (
            [s for _, _, s in slurm_cluster.jobs(run_prefix(str(slurm.home), first))]
            == ["CANCELLED"]
        ),
        what="the dead runner's job to be cancelled",
    )
    old = runs_task(slurm, first, "t")
    assert old["status"] == "killed"
    assert len(slurm_cluster.jobs(run_prefix(str(slurm.home), second))) == 1


def runs_task(server: Server, run_id: int, name: str) -> Any:
    return (
        server.db()
        .execute("SELECT * FROM run_tasks WHERE run_id = ? AND name = ?", (run_id, name))
        .fetchone()
    )


def test_a_job_that_ended_while_nobody_watched_gets_its_real_exit_code(
    slurm: Server, slurm_cluster: Any
) -> None:
    slurm.script("late", "read -r _ < <(sleep 2; echo); exit 5\n")
    slurm.define("w", task("t", "late", retries=0), executor="slurm")
    first = slurm.call("run", workflow="w")["run_id"]
    slurm.wait_task("w", "t", "running")
    runner = runner_of(slurm, first)
    assert slurm.process is not None
    slurm.process.kill()  # spad first, then its runner: nobody watches the job
    slurm.process.wait()
    os.kill(runner, signal.SIGKILL)
    wait_for(
        lambda: (
            [s for _, _, s in slurm_cluster.jobs(run_prefix(str(slurm.home), first))] == ["FAILED"]
        ),
        what="the job to end by itself",
    )
    slurm.start()
    wait_for(lambda: runs_task(slurm, first, "t")["status"] == "error(5)", what="error(5)")
    assert runs_task(slurm, first, "t")["exit_code"] == 5


def test_spad_killed_mid_run_and_restarted_adopts_the_jobs(
    slurm: Server, slurm_cluster: Any
) -> None:
    slurm.define(
        "w",
        task("a", "simple", "2", exec="parallel"),
        task("b", "simple", "3"),
        task("c", "simple", "0"),
        executor="slurm",
    )
    run_id = slurm.call("run", workflow="w")["run_id"]
    wait_for(
        lambda: all(t["status"] == "running" for t in slurm.status("w")["tasks"][:2]),
        what="a and b to run",
    )
    slurm.stop(signal.SIGKILL)
    slurm.start()
    state = slurm.wait_status("w", "success0")
    assert state["run_id"] == run_id
    assert [t["status"] for t in state["tasks"]] == ["success0"] * 3
    names = sorted(name for _, name, _ in slurm_cluster.jobs(run_prefix(str(slurm.home), run_id)))
    prefix = run_prefix(str(slurm.home), run_id)
    assert names == [f"{prefix}a1-a", f"{prefix}a1-b", f"{prefix}a1-c"]


def test_the_controller_restarted_mid_run_loses_nothing(slurm: Server, slurm_cluster: Any) -> None:
    slurm.define(
        "w",
        task("a", "simple", "3", exec="parallel"),
        task("b", "simple", "1"),
        task("c", "simple", "0"),
        executor="slurm",
    )
    run_id = slurm.call("run", workflow="w")["run_id"]
    slurm.wait_task("w", "a", "running")
    cluster_script(slurm_cluster, "restart-controller")
    state = slurm.wait_status("w", "success0", timeout=90)
    assert [t["status"] for t in state["tasks"]] == ["success0"] * 3
    assert [t["attempt"] for t in state["tasks"]] == [1, 1, 1]
    prefix = run_prefix(str(slurm.home), run_id)
    assert len(slurm_cluster.jobs(prefix)) == 3


def test_spa_ctl_shows_the_job_where_the_pid_is_and_follows_its_log(slurm: Server) -> None:
    slurm.script("talk", "echo first\nread -r _ < <(sleep 2; echo)\necho second\n")
    slurm.define("w", task("t", "talk"), executor="slurm")
    slurm.call("run", workflow="w")
    row = slurm.wait_task("w", "t", "running")
    env = {**clean_env(), "SPA_URL": slurm.url, "SPA_HOME": str(slurm.home), "COLUMNS": "200"}
    table = subprocess.run(
        [str(VENV_BIN / "spa_ctl"), "status", "-w", "w"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=True,
    ).stdout
    assert f"job {row['job']}" in table
    follow = subprocess.run(
        [str(VENV_BIN / "spa_ctl"), "logs", "-w", "w", "-t", "t", "-f"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    assert follow.index("first") < follow.index("second")
    assert slurm.wait_status("w", "success0")


def cluster_script(cluster: Any, command: str) -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "slurm-cluster"), command, str(cluster.folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_controller_that_is_away_delays_the_submission_without_failing_it(
    slurm: Server, slurm_cluster: Any
) -> None:
    slurm.define("w", task("t", "simple", "0", retries=0), executor="slurm")
    cluster_script(slurm_cluster, "stop-controller")
    try:
        slurm.call("run", workflow="w")
        slurm.wait_task("w", "t", "queued")
        wait_for(lambda: logged(slurm, "w", "t", "submission delayed"), what="the log to say why")
        assert slurm.status("w")["status"] == "running"  # the server answers meanwhile
    finally:
        cluster_script(slurm_cluster, "start-controller")
    state = slurm.wait_status("w", "success0", timeout=60)
    assert state["tasks"][0]["attempt"] == 1
    run_id = state["run_id"]
    assert len(slurm_cluster.jobs(run_prefix(str(slurm.home), run_id))) == 1


def test_a_job_the_scheduler_does_not_end_is_immortal_job(
    slurm_cluster: Any, home: Path, make_server: Callable[..., Server]
) -> None:
    home.mkdir(parents=True)
    (home / "spad.toml").write_text("[slurm]\npoll_interval = 0.2\ncommand_timeout = 2\n")
    server = make_server(SPAD_TEST_NO_KILL="1", **slurm_cluster.env).start()
    try:
        server.script("deaf", "trap '' TERM\necho deaf\nsleep 300 &\nwait\nwait\nwait\n")
        server.define("w", task("t", "deaf", stop_timeout=0.5), executor="slurm")
        server.call("run", workflow="w")
        row = server.wait_task("w", "t", "running")
        wait_for(lambda: logged(server, "w", "t", "deaf"), what="the trap to be set")
        server.call("stop", workflow="w")
        state = server.wait_status("w", "stopped")
        assert state["tasks"][0]["status"] == f"immortal({row['job']})"
    finally:
        server.kill_everything()
        cancel_jobs(slurm_cluster, home)


def test_a_job_slurm_refuses_ends_error_126_and_its_log_says_why(slurm: Server) -> None:
    slurm.define(
        "w", task("t", "simple", retries=0, executor="slurm", slurm_args=["--partition=nope"])
    )
    slurm.call("run", workflow="w")
    state = slurm.wait_status("w", "error(126)")
    assert state["tasks"][0]["job"] is None
    assert logged(slurm, "w", "t", "Slurm refused the job") and logged(slurm, "w", "t", "nope")


def test_a_job_may_set_itself_waiting_before_spad_saw_it_leave_the_queue(
    slurm_cluster: Any, home: Path, make_server: Callable[..., Server]
) -> None:
    home.mkdir(parents=True)
    (home / "spad.toml").write_text("[slurm]\npoll_interval = 4\n")  # spad looks late
    server = make_server(**slurm_cluster.env).start()
    try:
        server.define("w", task("t", "wait", "3"), executor="slurm")
        server.call("run", workflow="w")
        server.wait_task("w", "t", "waiting")
        state = server.wait_status("w", "success0", timeout=60)
        assert state["tasks"][0]["status"] == "success0"
    finally:
        server.kill_everything()
        cancel_jobs(slurm_cluster, home)


def test_a_hard_stop_of_the_runner_kills_its_jobs_and_the_workflow_resumes(
    slurm: Server, slurm_cluster: Any
) -> None:
    first = run_trapper(slurm)
    os.kill(runner_of(slurm, first), signal.SIGTERM)
    slurm.wait_status("w", lambda s: slurm.status("w")["run_id"] != first)
    assert runs_task(slurm, first, "t")["status"] == "killed"
    wait_for(
        lambda: (
            not {"RUNNING", "PENDING", "COMPLETING"}
            & {s for _, _, s in slurm_cluster.jobs(run_prefix(str(slurm.home), first))}
        ),
        what="the first run's job to be gone",
    )
    slurm.wait_task("w", "t", "running")


def test_a_second_job_with_an_attempt_s_tag_is_cancelled(slurm: Server, slurm_cluster: Any) -> None:
    run_id = run_trapper(slurm)
    row = slurm.task("w", "t")
    home = str(slurm.home)
    twin = slurm_cluster.command(
        "sbatch",
        "--parsable",
        f"--job-name={run_tag(home, run_id)}",
        f"--comment={attempt_tag(home, run_id, 't', 1)}",
        "--output=/dev/null",
        "--wrap=sleep 300",
    )  # what a controller crash can do: the same attempt twice
    assert twin.returncode == 0, twin.stderr
    twin_id = twin.stdout.strip()

    def states() -> dict[str, str]:
        return {job: state for job, _, state in slurm_cluster.jobs(run_prefix(home, run_id))}

    wait_for(lambda: states().get(twin_id) == "CANCELLED", what="the twin to be cancelled")
    assert states()[row["job"]] == "RUNNING"
    assert logged(slurm, "w", "t", f"job {twin_id} has this attempt's tag too")
    assert slurm.task("w", "t")["status"] == "running"


def test_a_dead_runner_s_job_is_cancelled_once_the_controller_is_back_even_across_a_restart(
    slurm: Server, slurm_cluster: Any
) -> None:
    first = run_trapper(slurm)
    cluster_script(slurm_cluster, "stop-controller")
    try:
        os.kill(runner_of(slurm, first), signal.SIGKILL)
        slurm.wait_status("w", lambda s: slurm.status("w")["run_id"] != first)
        assert runs_task(slurm, first, "t")["status"] == "running"  # not settled without Slurm
        slurm.stop(signal.SIGKILL)  # and the server dies before it could settle it
        slurm.start()
    finally:
        cluster_script(slurm_cluster, "start-controller")
    wait_for(
        lambda: runs_task(slurm, first, "t")["status"] == "killed",
        timeout=90,
        what="the first run's task to be settled",
    )
    wait_for(
        lambda: (
            [s for _, _, s in slurm_cluster.jobs(run_prefix(str(slurm.home), first))]
            == ["CANCELLED"]
        ),
        what="the first run's job to be cancelled",
    )
    slurm.wait_task("w", "t", "running", timeout=60)


def test_a_job_past_its_timeout_is_stopped_and_ends_timeout(slurm: Server) -> None:
    slurm.define(
        "w", task("t", "simple", "300", timeout=1, retries=0, stop_timeout=5), executor="slurm"
    )
    slurm.call("run", workflow="w")
    state = slurm.wait_status("w", "timeout")
    assert state["tasks"][0]["status"] == "timeout"


def test_a_second_test_cluster_on_the_same_host_is_refused(
    slurm_cluster: Any, tmp_path: Path
) -> None:
    other = tmp_path / "other-cluster"
    done = subprocess.run(
        [str(REPO / "scripts" / "slurm-cluster"), "up", str(other)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "port 6817 is in use" in done.stderr and "one cluster per host" in done.stderr
    again = subprocess.run(  # the same folder again: it runs already, nothing to do
        [str(REPO / "scripts" / "slurm-cluster"), "up", str(slurm_cluster.folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0 and f"SLURM_CONF={slurm_cluster.conf}" in again.stdout
