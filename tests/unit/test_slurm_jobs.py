"""Slurm's command lines and outputs as spad reads them (pure logic)."""

from __future__ import annotations

import pytest

from spad.executors import slurm_config
from spad.executors import slurm_jobs as jobs


def test_the_job_is_the_task_tagged_with_run_task_and_attempt() -> None:
    run = jobs.run_tag("/srv/home", 12)
    tag = jobs.attempt_tag("/srv/home", 12, "t-1", 2)
    assert run == f"spad-{jobs.home_key('/srv/home')}-r12"
    assert tag == f"{run}-a2-t-1"
    assert jobs.parse_attempt_tag(tag, jobs.run_prefix("/srv/home", 12)) == ("t-1", 2)
    assert jobs.parse_attempt_tag(tag, jobs.run_prefix("/srv/home", 1)) is None
    assert jobs.home_key("/srv/home") != jobs.home_key("/srv/other")
    command = jobs.sbatch_command(
        ["/srv/home/bin/simple", "a b", "$x"],
        "/srv/home/data",
        "/srv/home/logs/t.1.log",
        (run, tag),
        "batch",
        ["--time=60"],
        ["--time=5"],
    )
    assert command[:2] == ["sbatch", "--parsable"]
    assert f"--job-name={run}" in command and f"--comment={tag}" in command
    assert "--output=/srv/home/logs/t.1.log" in command and "--open-mode=append" in command
    assert "--chdir=/srv/home/data" in command and "--partition=batch" in command
    assert command.index("--time=60") < command.index("--time=5")  # the task's own win
    assert command[-1] == "--wrap=exec /srv/home/bin/simple 'a b' '$x'"


def test_no_partition_means_the_cluster_s_default() -> None:
    command = jobs.sbatch_command(["x"], "/", "/l", ("r", "t"), None, [], [])
    assert not any(part.startswith("--partition") for part in command)


@pytest.mark.parametrize(
    ("stdout", "job"), [("42\n", "42"), ("42;cluster\n", "42"), ("", None), ("error", None)]
)
def test_sbatch_parsable_output(stdout: str, job: str | None) -> None:
    assert jobs.parse_sbatch(stdout) == job


def test_squeue_output_is_parsed_and_the_comment_may_hold_a_bar() -> None:
    out = "7|spad-x-r1|RUNNING|0|spad-x-r1-a1-t\n8|n|FAILED|1792|a|b\nnoise\n"
    rows = jobs.parse_squeue(out)
    assert [(r.job, r.name, r.state, r.wait_status, r.comment) for r in rows] == [
        ("7", "spad-x-r1", "RUNNING", 0, "spad-x-r1-a1-t"),
        ("8", "n", "FAILED", 1792, "a|b"),
    ]


@pytest.mark.parametrize(
    ("state", "wait_status", "expected"),
    [
        ("PENDING", None, (jobs.QUEUED, None)),
        ("RUNNING", 0, (jobs.RUNNING, None)),
        ("COMPLETING", 0, (jobs.RUNNING, None)),
        ("COMPLETED", 0, (jobs.ENDED, 0)),
        ("FAILED", 7 << 8, (jobs.ENDED, 7)),  # ExitCode=7:0
        ("FAILED", 9, (jobs.ENDED, -9)),  # ExitCode=0:9
        ("CANCELLED", 0, (jobs.ENDED, -15)),
        ("CANCELLED", 9, (jobs.ENDED, -9)),
        ("TIMEOUT", 0, (jobs.ENDED, -15)),
        ("NODE_FAIL", 0, (jobs.ENDED, -9)),
        ("OUT_OF_MEMORY", 0, (jobs.ENDED, -9)),
    ],
)
def test_job_states_as_outcomes(
    state: str, wait_status: int | None, expected: tuple[str, int | None]
) -> None:
    assert jobs.outcome(state, wait_status) == expected


def test_slurm_config_defaults_and_refusals() -> None:
    config = slurm_config.parse({})
    assert (config.partition, config.sbatch_args, config.poll_interval) == (None, [], 1.0)
    config = slurm_config.parse({"partition": "p", "sbatch_args": ["-A", "x"], "poll_interval": 2})
    assert (config.partition, config.sbatch_args, config.poll_interval) == ("p", ["-A", "x"], 2.0)
    for bad, field in (
        ({"queue": "p"}, "slurm.queue: unknown key"),
        ({"partition": 3}, "slurm.partition"),
        ({"sbatch_args": "--time=5"}, "slurm.sbatch_args"),
        ({"poll_interval": 0}, "slurm.poll_interval"),
        ({"poll_interval": True}, "slurm.poll_interval"),
    ):
        with pytest.raises(slurm_config.ConfigError, match=field):
            slurm_config.parse(bad)
