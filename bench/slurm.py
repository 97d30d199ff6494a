"""spad's slurm executor against bare Slurm commands, side by side in one run.

On the single-node cluster of scripts/slurm-cluster (started here when it is not up, stopped
again at the end):

- **start**: from ``run`` of a workflow of N parallel tasks until spad shows all N ``running``,
  against ``sbatch`` of the same N scripts until ``squeue`` shows all N RUNNING;
- **stop**: from ``stop`` of those N trapping jobs until spad shows the workflow ``stopped``,
  against one ``scancel --signal=TERM --full`` of the N jobs until none runs.

Each side is measured ``--rounds`` times, alternating; the table shows medians and the ratio
spad / bare (goal: within 1.2x). ``python bench/slurm.py [--jobs 20] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import wait_until  # noqa: E402
from systems import Spad  # noqa: E402

from spad.executors.slurm_jobs import home_key  # noqa: E402

CLUSTER = Path("/tmp/spad-slurm-tests")
SCRIPT = HERE.parent / "scripts" / "slurm-cluster"
TRAP = '#!/usr/bin/env bash\ntrap "exit 0" TERM\necho ready\nsleep 300 &\nwait\n'
POLL_INTERVAL = 0.1


def slurm(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def states(prefix: str) -> list[str]:
    out = slurm("squeue", "--noheader", "--states=all", "-O", "Name:|,State:|")
    rows = [line.split("|") for line in out.splitlines() if "|" in line]
    return [state.strip() for name, state, *_ in rows if name.strip().startswith(prefix)]


def trapping(logs: list[Path]) -> None:
    """Until every job said it set its trap: Slurm shows a job RUNNING before its batch
    script runs, and a signal sent in between is lost (the same for both sides)."""

    def ready(path: Path) -> bool:
        return path.exists() and "ready" in path.read_text()

    wait_until(lambda: all(ready(p) for p in logs), step=0.01)


def bare_round(folder: Path, jobs: int, round_no: int) -> tuple[float, float]:
    """(seconds to all running, seconds to all ended after the stop) with bare commands."""
    prefix = f"bare-{round_no}-"
    scripts = []
    for number in range(jobs):
        path = folder / f"job{number}.sh"
        path.write_text(TRAP)
        path.chmod(0o755)
        scripts.append(path)
    started = time.perf_counter()
    ids = [
        slurm(
            "sbatch",
            "--parsable",
            f"--job-name={prefix}{n}",
            f"--output={folder}/{prefix}{n}.log",
            f"--chdir={folder}",
            f"--wrap=exec {path}",
        ).strip()
        for n, path in enumerate(scripts)
    ]
    wait_until(lambda: states(prefix).count("RUNNING") == jobs, step=0.01)
    up = time.perf_counter() - started
    trapping([folder / f"{prefix}{n}.log" for n in range(jobs)])
    started = time.perf_counter()
    slurm("scancel", "--signal=TERM", "--full", *ids)
    wait_until(lambda: not {"RUNNING", "COMPLETING", "PENDING"} & set(states(prefix)), step=0.01)
    return up, time.perf_counter() - started


def spad_round(spad: Spad, jobs: int, round_no: int) -> tuple[float, float]:
    """The same with spad: ``run`` of N parallel trapping tasks, then ``stop``."""
    workflow = f"fan{round_no}"
    tasks = [
        {"name": f"t{n}", "function": "trapper", "exec": "parallel", "stop_timeout": 60}
        for n in range(jobs)
    ]
    spad.call(
        "create",
        project={
            "name": "bench",
            "workflows": [{"name": workflow, "executor": "slurm", "tasks": tasks}],
        },
    )
    with spad.db() as conn:
        started = time.perf_counter()
        run_id = spad.call("run", project="bench", workflow=workflow)["run_id"]
        wait_until(lambda: spad.count_tasks(conn, run_id, "running") == jobs, step=0.01)
        up = time.perf_counter() - started
        logs = spad.home / "logs" / "bench" / workflow / str(run_id)
        trapping([logs / f"t{n}.1.log" for n in range(jobs)])
        started = time.perf_counter()
        spad.call("stop", project="bench", workflow=workflow)
        wait_until(lambda: spad.run_status(conn, run_id) == "stopped", step=0.01)
        down = time.perf_counter() - started
        stopped = spad.count_tasks(conn, run_id, "stopped")
    if stopped != jobs:
        raise RuntimeError(f"bench: {stopped} of {jobs} tasks ended stopped")
    return up, down


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    was_up = (CLUSTER / "slurmctld.pid").exists()
    started = subprocess.run(
        [str(SCRIPT), "up", str(CLUSTER)], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        print(f"bench: no Slurm cluster: {started.stderr.strip()}", file=sys.stderr)
        return 1
    os.environ["SLURM_CONF"] = str(CLUSTER / "slurm.conf")
    spad = Spad()
    spad.home.mkdir(parents=True)
    (spad.home / "spad.toml").write_text(f"[slurm]\npoll_interval = {POLL_INTERVAL}\n")
    results: dict[str, dict[str, list[float]]] = {
        "start": {"spad": [], "bare": []},
        "stop": {"spad": [], "bare": []},
    }
    try:
        spad.start()
        (spad.home / "bin" / "trapper").write_text(TRAP)
        (spad.home / "bin" / "trapper").chmod(0o755)
        for round_no in range(args.rounds):
            for side in ("bare", "spad"):
                if side == "bare":
                    up, down = bare_round(spad.folder, args.jobs, round_no)
                else:
                    up, down = spad_round(spad, args.jobs, round_no)
                results["start"][side].append(up)
                results["stop"][side].append(down)
    finally:
        spad.stop()
        _cancel_own(spad)
        if not was_up:
            subprocess.run([str(SCRIPT), "down", str(CLUSTER)], check=False)
    report(results, args.jobs)
    if args.json:
        args.json.write_text(json.dumps({"jobs": args.jobs, "results": results}, indent=1))
    return 0


def _cancel_own(spad: Spad) -> None:
    prefix = f"spad-{home_key(str(spad.home))}-"
    out = slurm("squeue", "--noheader", "-O", "JobID:|,Name:|")  # the live ones
    for line in out.splitlines():
        job, name, *_ = (part.strip() for part in line.split("|"))
        if name.startswith(prefix) or name.startswith("bare-"):
            subprocess.run(["scancel", "--signal=KILL", "--full", job], check=False)


def report(results: dict[str, Any], jobs: int) -> None:
    print(f"slurm executor, {jobs} jobs, poll_interval {POLL_INTERVAL} s (medians, seconds)")
    print(f"{'metric':<40} {'spad':>8} {'bare':>8} {'spad/bare':>10}")
    labels = {
        "start": f"run -> {jobs} running (bare: sbatch x{jobs})",
        "stop": f"stop {jobs} trapping (bare: scancel --full)",
    }
    for metric, sides in results.items():
        spad, bare = statistics.median(sides["spad"]), statistics.median(sides["bare"])
        print(f"{labels[metric]:<40} {spad:>8.3f} {bare:>8.3f} {spad / bare:>9.2f}x")


if __name__ == "__main__":
    sys.exit(main())
