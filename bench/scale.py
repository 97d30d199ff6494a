"""W8: the cost curve from 1 to 1,000 workflows, spad beside supervisord and the floor.

    .venv/bin/python bench/scale.py [--sizes 1 10 100 1000] [--runs 1] [--plot bench/scale.png]

Each workflow is 3 tasks: two background ``sleep`` and one awaited ``sleep``. For each size it
measures, per system: seconds from the first ``run`` call to every task running, PSS of the
system's own processes (total and per workflow), p99 latency of ``list`` and of one
workflow's ``status`` while all run, CPU used while nothing changes (percent of one core) and
seconds to stop everything until no task is left. supervisord runs the same number of
``sleep`` programs (3 per workflow), started and stopped by one call each
(``startAllProcesses``, ``stopAllProcesses``); the floor is a bare asyncio loop spawning them.

spad's ``run`` and ``stop`` calls go in JSON-RPC batches of :data:`BATCH` (rows without a
suffix), and once more one HTTP request per call (rows "a call each"). The rows "start CPU
ms/wf" say where the batched start's CPU went: spad's server, its fork server, the runners,
the tasks themselves (a ``sleep``'s exec) and the bench's own client.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import pss_kib, wait_until
from systems import Spad, Supervisord

from spad import procs

HERE = Path(__file__).resolve().parent
TASKS_PER_WORKFLOW = 3
SLEEP = "600"
IDLE_SECONDS = 5.0
#: ``run`` and ``stop`` calls per JSON-RPC batch: supervisord's side is one call for all.
BATCH = 100
LATENCY_CALLS = 200
TICKS = os.sysconf("SC_CLK_TCK")
Row = dict[str, float | None]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            continue
    return total / TICKS


def idle_cpu_percent(pids: list[int]) -> float:
    before = cpu_seconds(pids)
    time.sleep(IDLE_SECONDS)  # measuring idleness is waiting on purpose
    return (cpu_seconds(pids) - before) / IDLE_SECONDS * 100


def p99_ms(call: Any, count: int = LATENCY_CALLS) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.quantiles(times, n=100)[98] if len(times) > 1 else times[0]


def workflow_tasks() -> list[dict[str, Any]]:
    background = {"function": "sleep", "params": [SLEEP], "exec": "parallel", "stop_timeout": 5}
    return [
        {"name": "bg1", **background},
        {"name": "bg2", **background},
        {"name": "main", "function": "sleep", "params": [SLEEP], "stop_timeout": 5},
    ]


def running_tasks(spad: Spad) -> int:
    with spad.db() as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM run_tasks t JOIN runs r ON r.id = t.run_id"
                " WHERE r.finished = 0 AND t.status = 'running'"
            ).fetchone()[0]
        )


def sched_seconds(pids: list[int]) -> float:
    """CPU seconds the processes ran so far, by the scheduler's own clock (``schedstat``): the
    tick-sampled counts of ``stat`` miss most of a process that runs for a millisecond."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as handle:
                total += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def spad_processes(spad: Spad) -> dict[str, list[int]]:
    """spad's processes by role, and the tasks' (their pids from the store)."""
    assert spad.process is not None
    own = spad.own_pids()
    forkserver = [p for p in own if _comm(p) == "spad-forkserver"]
    runners = [p for p in own if _comm(p) == "spad-runner"]
    with spad.db() as conn:
        tasks = [
            int(row[0])
            for row in conn.execute(
                "SELECT pid FROM run_tasks WHERE pid IS NOT NULL AND ended_at IS NULL"
            )
        ]
    return {
        "server": [spad.process.pid],
        "fork server": forkserver,
        "runners": runners,
        "tasks": tasks,
    }


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def call_each(spad: Spad, method: str, names: list[str], batch: int) -> None:
    """``method`` for each workflow: one request each, or JSON-RPC batches of ``batch``."""
    if batch:
        for i in range(0, len(names), batch):
            spad.batch(method, [{"project": "bench", "workflow": n} for n in names[i : i + batch]])
    else:
        for name in names:
            spad.call(method, project="bench", workflow=name)


def start_all(spad: Spad, names: list[str], batch: int) -> float:
    """Seconds from the first ``run`` until every task runs: one call per workflow, or
    JSON-RPC batches of ``batch`` calls (the way a script starting them all would)."""
    expected = len(names) * TASKS_PER_WORKFLOW
    started = time.perf_counter()
    call_each(spad, "run", names, batch)
    wait_until(lambda: running_tasks(spad) == expected, timeout=600, step=0.05)
    return time.perf_counter() - started


def stop_all(spad: Spad, names: list[str], batch: int) -> float:
    """Seconds from the first ``stop`` until no task is left."""
    with spad.db() as conn:
        tasks = conn.execute(
            "SELECT pid, pid_identity FROM run_tasks WHERE pid IS NOT NULL AND ended_at IS NULL"
        ).fetchall()
    started = time.perf_counter()
    call_each(spad, "stop", names, batch)
    wait_until(
        lambda: not any(procs.is_alive(pid, ident) for pid, ident in tasks),
        timeout=600,
        step=0.01,
    )
    return time.perf_counter() - started


def finished(spad: Spad) -> bool:
    with spad.db() as conn:
        return not conn.execute("SELECT 1 FROM runs WHERE finished = 0 LIMIT 1").fetchone()


def spad_curve(workflows: int) -> Row:
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        names = [f"w{i}" for i in range(workflows)]
        spad.call(
            "create",
            project={
                "name": "bench",
                "workflows": [{"name": n, "tasks": workflow_tasks()} for n in names],
            },
        )
        one_by_one_up = start_all(spad, names, batch=0)
        one_by_one_stop = stop_all(spad, names, batch=0)
        wait_until(lambda: finished(spad), timeout=600, step=0.05)
        # The runs again, sent in batches: what is measured below is of these.
        before = {role: sched_seconds(p) for role, p in spad_processes(spad).items()}
        client_before = time.process_time()
        up = start_all(spad, names, BATCH)
        client_cpu = time.process_time() - client_before
        processes = spad_processes(spad)
        cpu = {role: sched_seconds(p) - before.get(role, 0.0) for role, p in processes.items()}
        cpu["client"] = client_cpu
        own = spad.own_pids()
        pss = sum(pss_kib(pid) for pid in own)
        idle = idle_cpu_percent(own)
        list_p99 = p99_ms(lambda: spad.call("list"))
        status_p99 = p99_ms(lambda: spad.call("status", project="bench", workflow=names[-1]))
        stop = stop_all(spad, names, BATCH)
    finally:
        spad.stop()
    row = _row(workflows, up, pss, list_p99, status_p99, idle, stop)
    row["s to all running, a call each"] = one_by_one_up
    row["s to stop all, a call each"] = one_by_one_stop
    for role in ("server", "fork server", "runners", "tasks", "client"):
        row[f"start CPU ms/wf: {role}"] = cpu[role] * 1000 / workflows
    return row


def supervisord_curve(workflows: int) -> Row:
    count = workflows * TASKS_PER_WORKFLOW
    sup = Supervisord()
    try:
        sup.start(
            {
                f"s{i}": {"command": f"sleep {SLEEP}", "autostart": "false", "startsecs": "0"}
                for i in range(count)
            }
        )
        started = time.perf_counter()
        sup.rpc().supervisor.startAllProcesses(False)
        wait_until(lambda: all(s == "RUNNING" for s in sup.states()), timeout=600, step=0.05)
        up = time.perf_counter() - started
        assert sup.process is not None
        pss = sup.pss()
        idle = idle_cpu_percent([sup.process.pid])
        info = sup.rpc().supervisor
        list_p99 = p99_ms(info.getAllProcessInfo, 50 if count > 300 else LATENCY_CALLS)
        status_p99 = p99_ms(lambda: info.getProcessInfo("s0"))
        started = time.perf_counter()
        info.stopAllProcesses(True)
        stop = time.perf_counter() - started
    finally:
        sup.stop()
    return _row(workflows, up, pss, list_p99, status_p99, idle, stop)


def floor_curve(workflows: int) -> Row:
    out = subprocess.run(
        [sys.executable, str(HERE / "floor.py"), "fan_out", str(workflows * TASKS_PER_WORKFLOW)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    base = json.loads(out.stdout)
    return _row(workflows, base["seconds"], base["pss_kib"], None, None, None, base["stop_seconds"])


def _row(
    workflows: int,
    up: float,
    pss_kib_total: float,
    list_p99: float | None,
    status_p99: float | None,
    idle: float | None,
    stop: float,
) -> Row:
    return {
        "s to all running": up,
        "PSS MiB total": pss_kib_total / 1024,
        "PSS MiB per workflow": pss_kib_total / 1024 / workflows,
        "list p99 ms": list_p99,
        "status p99 ms": status_p99,
        "idle CPU %": idle,
        "s to stop all": stop,
    }


SYSTEMS = {"spad": spad_curve, "supervisord": supervisord_curve, "floor": floor_curve}


def median_rows(rows: list[Row]) -> Row:
    keys = rows[0].keys()
    merged: Row = {}
    for key in keys:
        values = [r[key] for r in rows if r[key] is not None]
        merged[key] = statistics.median(values) if values else None  # type: ignore[type-var]
    return merged


def print_curve(curve: dict[int, dict[str, Row]]) -> None:
    metrics = list(next(iter(next(iter(curve.values())).values())).keys())
    header = f"{'workflows':>9} {'metric':<31} {'spad':>10} {'supervisord':>12} {'floor':>10}"
    header += f" {'spad/sup':>9} {'spad/floor':>10}"
    print(header)
    print("-" * len(header))
    for size, systems in curve.items():
        for metric in metrics:
            values = {name: systems.get(name, {}).get(metric) for name in SYSTEMS}
            cells = [f"{v:.3g}" if v is not None else "-" for v in values.values()]
            spad = values["spad"]
            ratios = [
                f"{spad / other:.2f}" if spad is not None and other else "-"
                for other in (values["supervisord"], values["floor"])
            ]
            print(
                f"{size:>9} {metric:<31} {cells[0]:>10} {cells[1]:>12} {cells[2]:>10}"
                f" {ratios[0]:>9} {ratios[1]:>10}"
            )


def plot(curve: dict[int, dict[str, Row]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["s to all running", "PSS MiB total", "list p99 ms", "s to stop all"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6))
    sizes = sorted(curve)
    for axis, metric in zip(axes, metrics, strict=True):
        for name in SYSTEMS:
            points = [
                (size, curve[size][name][metric])
                for size in sizes
                if name in curve[size] and curve[size][name].get(metric) is not None
            ]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=name)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("workflows (3 tasks each)")
        axis.set_title(metric)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--json", type=Path, default=HERE / "results" / "scale.json")
    parser.add_argument("--plot", type=Path, default=HERE / "scale.png")
    args = parser.parse_args()
    curve: dict[int, dict[str, Row]] = {}
    for size in args.sizes:
        curve[size] = {}
        for name in args.systems:
            rows = [SYSTEMS[name](size) for _ in range(args.runs)]
            curve[size][name] = median_rows(rows)
            print(f"done: {name} at {size} workflows", file=sys.stderr)
    print_curve(curve)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({str(k): v for k, v in curve.items()}, indent=2))
    if args.plot:
        plot(curve, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
