"""spad side by side with supervisord and the floor, in one run.

    .venv/bin/python bench/run.py [--quick] [--runs 3] [--json bench/results/latest.json]

Each workload runs ``--runs`` times against each system; the table shows medians (min-max)
and the ratios spad / floor and spad / supervisord. ``--quick`` is the small smoke version CI
runs to keep the harness alive; its numbers mean little.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import wait_until
from systems import BIN, Spad, Supervisord

from spad import procs
from spad.cli.client import ServerError

HERE = Path(__file__).resolve().parent
Metrics = dict[str, float | None]


class Sizes:
    def __init__(self, quick: bool) -> None:
        self.chain = 20 if quick else 200
        self.fan_out = 30 if quick else 300
        self.graceful = 10 if quick else 100
        self.status_seconds = 0.5 if quick else 10.0
        self.workflows = 10 if quick else 100


def floor(workload: str, number: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "floor.py"), workload, str(number)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- W1 chain ---------------------------------------------------------------------------------


def define_chain(spad: Spad, count: int) -> None:
    spad.define(f"chain{count}", [{"name": f"t{i}", "function": "true"} for i in range(count)])


def spad_chain_seconds(spad: Spad, count: int) -> float:
    name = f"chain{count}"
    with spad.db() as conn:
        started = time.perf_counter()
        run_id = spad.call("run", project="bench", workflow=name)["run_id"]
        wait_until(lambda: spad.run_status(conn, run_id) == "success0")
        return time.perf_counter() - started


def w1_chain(sizes: Sizes) -> dict[str, Metrics]:
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        # Both defined before either runs: both runners start the same way (forked, from two
        # workflows on), so the difference is the tasks' alone.
        define_chain(spad, 1)
        define_chain(spad, sizes.chain)
        one = spad_chain_seconds(spad, 1)
        many = spad_chain_seconds(spad, sizes.chain)
    finally:
        spad.stop()
    floor_one = floor("chain", 1)["seconds"]
    floor_many = floor("chain", sizes.chain)["seconds"]
    bash = _bash_loop(sizes.chain) - _bash_loop(1)
    per = sizes.chain - 1
    return {
        "W1 marginal ms/task": {
            "spad": (many - one) / per * 1000,
            "floor": (floor_many - floor_one) / per * 1000,
            "bash": bash / per * 1000,
            "supervisord": None,
        },
        f"W1 wall s ({sizes.chain} tasks)": {
            "spad": many,
            "floor": floor_many,
            "supervisord": None,
        },
    }


def _bash_loop(count: int) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-c", f"for i in $(seq {count}); do /bin/true; done"], check=True)
    return time.perf_counter() - started


# -- W2 fan-out and W5 status API -------------------------------------------------------------


def w2_w5_fan_out(sizes: Sizes) -> dict[str, Metrics]:
    count = sizes.fan_out
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        spad.define(
            "fan",
            [
                {
                    "name": f"t{i}",
                    "function": "sleep",
                    "params": ["30"],
                    "exec": "parallel",
                    "stop_timeout": 5,
                }
                for i in range(count)
            ],
        )
        with spad.db() as conn:
            started = time.perf_counter()
            run_id = spad.call("run", project="bench", workflow="fan")["run_id"]
            # The probe is one SQLite count: sampling PSS here (pgrep and smaps every
            # millisecond) would take a core from the runner it measures.
            wait_until(lambda: spad.count_tasks(conn, run_id, "running") == count)
            spad_up = time.perf_counter() - started
            peak = spad.own_pss()
            single = _rate(spad_status_caller(spad, "fan"), sizes.status_seconds, 1)
            many = _rate(spad_status_caller(spad, "fan"), sizes.status_seconds, 8)
            peak = max(peak, spad.own_pss())  # the server grows while it serves status
            # spad's own tasks, by pid and identity: a `sleep 30` of another system is not ours.
            tasks = conn.execute(
                "SELECT pid, pid_identity FROM run_tasks WHERE run_id = ?", (run_id,)
            ).fetchall()
            started = time.perf_counter()
            spad.call("stop", project="bench", workflow="fan")
            wait_until(
                lambda: (
                    spad.run_status(conn, run_id) == "stopped"
                    and not any(procs.is_alive(pid, identity) for pid, identity in tasks)
                )
            )
            spad_stop = time.perf_counter() - started
    finally:
        spad.stop()
    sup = Supervisord()
    try:
        sup.start(
            {
                f"s{i}": {"command": "sleep 30", "autostart": "false", "startsecs": "0"}
                for i in range(count)
            }
        )
        started = time.perf_counter()
        sup.rpc().supervisor.startAllProcesses(False)
        wait_until(lambda: all(s == "RUNNING" for s in sup.states()), step=0.01)
        sup_up = time.perf_counter() - started
        sup_tasks = sup.own_tasks()
        sup_pss = sup.pss()
        sup_single = _rate(supervisord_caller(sup), sizes.status_seconds, 1)
        sup_many = _rate(supervisord_caller(sup), sizes.status_seconds, 8)
        sup_unix = _rate(supervisord_unix_caller(sup), sizes.status_seconds, 1)
        sup_pss = max(sup_pss, sup.pss())  # as spad's: a peak, after the status calls too
        started = time.perf_counter()
        sup.rpc().supervisor.stopAllProcesses(True)
        wait_until(lambda: not any(procs.is_alive(pid, ident) for pid, ident in sup_tasks))
        sup_stop = time.perf_counter() - started
    finally:
        sup.stop()
    base = floor("fan_out", count)
    return {
        f"W2 s until {count} run": {
            "spad": spad_up,
            "floor": base["seconds"],
            "supervisord": sup_up,
        },
        "W2 peak PSS MiB (own)": {
            "spad": peak / 1024,
            "floor": base["pss_kib"] / 1024,
            "supervisord": sup_pss / 1024,
        },
        "W2 s to stop all": {
            "spad": spad_stop,
            "floor": base["stop_seconds"],
            "supervisord": sup_stop,
        },
        "W5 status/s, 1 client": {"spad": single, "floor": None, "supervisord": sup_single},
        "W5 status/s, 1 client, sup. unix socket": {
            "spad": single,
            "floor": None,
            "supervisord": sup_unix,
        },
        "W5 status/s, 8 clients": {"spad": many, "floor": None, "supervisord": sup_many},
    }


def spad_status_caller(spad: Spad, workflow: str) -> tuple[str, str, str]:
    assert spad.client is not None
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "status",
            "id": 1,
            "params": {"project": "bench", "workflow": workflow},
        }
    )
    return ("spad", spad.client.url, json.dumps({"body": body, "token": spad.client.token}))


def supervisord_caller(sup: Supervisord) -> tuple[str, str, str]:
    return ("supervisord", f"http://127.0.0.1:{sup.port}/RPC2", "")


def supervisord_unix_caller(sup: Supervisord) -> tuple[str, str, str]:
    """The way ``supervisorctl`` talks to it by default: XML-RPC over its unix socket."""
    return ("supervisord-unix", f"unix://{sup.socket_path}", "")


def _calls(caller: tuple[str, str, str], seconds: float) -> int:
    kind, url, extra = caller
    deadline, done = time.perf_counter() + seconds, 0
    if kind in ("supervisord", "supervisord-unix"):
        import xmlrpc.client

        from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]

        transport = SupervisorTransport(None, None, url) if kind == "supervisord-unix" else None
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1" if transport else url, transport)
        while time.perf_counter() < deadline:
            proxy.supervisor.getAllProcessInfo()
            done += 1
        return done
    options = json.loads(extra)
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
    headers = {"Authorization": f"Bearer {options['token']}", "Content-Type": "application/json"}
    while time.perf_counter() < deadline:
        connection.request("POST", "/rpc", options["body"], headers)
        reply = connection.getresponse().read()
        assert b'"result"' in reply
        done += 1
    connection.close()
    return done


def _rate(caller: tuple[str, str, str], seconds: float, clients: int) -> float:
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        counts = pool.starmap(_calls, [(caller, seconds)] * clients)
    return sum(counts) / seconds


# -- W3 graceful stop -------------------------------------------------------------------------


def left_in_groups(groups: list[int]) -> int:
    """Processes still alive in these process groups (a task's, with what it started)."""
    return sum(len(procs.group_members(group)) for group in groups)


def w3_graceful(sizes: Sizes) -> dict[str, Metrics]:
    count = sizes.graceful
    groups: list[int] = []
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        spad.define(
            "trap",
            [
                {"name": f"t{i}", "function": "trapper", "exec": "parallel", "stop_timeout": 10}
                for i in range(count)
            ],
        )
        with spad.db() as conn:
            run_id = spad.call("run", project="bench", workflow="trap")["run_id"]
            wait_until(lambda: spad.count_tasks(conn, run_id, "running") == count)
            time.sleep(0.5)  # every bash must have installed its trap, as in the floor
            started = time.perf_counter()
            spad.call("stop", project="bench", workflow="trap")
            wait_until(lambda: spad.run_status(conn, run_id) == "stopped")
            spad_seconds = time.perf_counter() - started
            groups = [row[0] for row in conn.execute(
                "SELECT pid FROM run_tasks WHERE run_id = ?", (run_id,)
            )]  # fmt: skip
        spad_honoured = len([p for p in (spad.home / "data").iterdir() if p.name.startswith("t")])
        spad_left = left_in_groups(groups)
    finally:
        spad.stop()
    sup = Supervisord()
    try:
        script = sup.folder / "trapper"
        script.write_text(
            '#!/usr/bin/env bash\ntrap \'sleep 1; echo honoured > "$0.$$"; '
            "exit 0' TERM\nsleep 1000 &\nwait\n"
        )
        script.chmod(0o755)
        sup.start(
            {
                f"t{i}": {"command": str(script), "startsecs": "0", "stopwaitsecs": "10"}
                for i in range(count)
            }
        )
        wait_until(lambda: all(s == "RUNNING" for s in sup.states()), step=0.01)
        time.sleep(0.5)
        groups = [pid for pid, _ in sup.own_tasks()]  # each program leads its own group
        started = time.perf_counter()
        sup.rpc().supervisor.stopAllProcesses(True)
        sup_seconds = time.perf_counter() - started
        sup_honoured = len(list(sup.folder.glob("trapper.*")))
        sup_left = left_in_groups(groups)
    finally:
        sup.stop()
        for group in groups:  # what supervisord left behind: its own, not the machine's
            procs.kill_group(group)
    base = floor("graceful", count)
    return {
        f"W3 s graceful stop of {count}": {
            "spad": spad_seconds,
            "floor": base["seconds"],
            "supervisord": sup_seconds,
        },
        "W3 traps honoured": {
            "spad": spad_honoured,
            "floor": base["honoured"],
            "supervisord": sup_honoured,
        },
        "W3 children left behind": {"spad": spad_left, "floor": 0, "supervisord": sup_left},
    }


# -- W4 restart -------------------------------------------------------------------------------


def starts_in(path: Path, count: int) -> list[float]:
    """Wait (reading the file only) until the task has started ``count`` times."""
    wait_until(lambda: path.exists() and len(path.read_text().split()) >= count, step=0.005)
    return [float(x) for x in path.read_text().split()[:count]]


def asked_mid_window(path: Path, ask: Callable[[], Any]) -> Any:
    """What a status call answers half a second after the first start: the attempt exited
    within milliseconds and the restart is due at 1 s, so this is someone asking "why is it
    restarting?"."""
    first = starts_in(path, 1)[0]
    time.sleep(max(0.0, first + 0.5 - time.time()))
    return ask()


def supervisord_failing(starts_file: Path) -> Supervisord:
    sup = Supervisord()
    sup.start(
        {
            "fail": {
                "command": f"sh -c 'date +%%s.%%N >> {starts_file}; exit 3'",
                "startsecs": "0",
                "autorestart": "true",
                "exitcodes": "0",
            }
        }
    )
    return sup


def w4_restart(_sizes: Sizes) -> dict[str, Metrics]:
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        spad.define("fail", [{"name": "t", "function": "fail3", "retries": 1, "retry_delay": 1.0}])
        with spad.db() as conn:
            run_id = spad.call("run", project="bench", workflow="fail")["run_id"]
            starts_file = spad.home / "data" / "starts"
            task = asked_mid_window(
                starts_file,
                lambda: spad.call("status", project="bench", workflow="fail")["tasks"][0],
            )
            starts = starts_in(starts_file, 2)
            wait_until(lambda: spad.run_status(conn, run_id) == "error(3)")
        spad_interval, spad_shown = starts[1] - starts[0], task["exit_code"]
    finally:
        spad.stop()
    # Twice, because asking supervisord wakes its loop, which restarts the process at once: the
    # interval is measured without asking, the exit code shown on a second instance.
    folder = Path(tempfile.mkdtemp(prefix="spad-bench-w4-"))
    try:
        sup = supervisord_failing(folder / "unasked")
        try:
            starts = starts_in(folder / "unasked", 2)
        finally:
            sup.stop()
        sup_interval = starts[1] - starts[0]
        sup = supervisord_failing(folder / "asked")
        try:
            info = sup.rpc().supervisor.getProcessInfo
            sup_shown = asked_mid_window(folder / "asked", lambda: info("fail")["exitstatus"])
        finally:
            sup.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = floor("restart", 1.0)
    return {
        "W4 s between start and restart (delay 1 s)": {
            "spad": spad_interval,
            "floor": base["seconds"],
            "supervisord": sup_interval,
        },
        "W4 exit code shown while restarting": {
            "spad": spad_shown,
            "floor": base["exit_code"],
            "supervisord": sup_shown,
        },
    }


# -- W6 memory and W7 recovery ----------------------------------------------------------------


def w6_w7_memory_recovery(sizes: Sizes) -> dict[str, Metrics]:
    count = sizes.workflows
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        time.sleep(0.5)  # idle means idle: let the start settle
        fresh = spad.own_pss()  # no call yet: the methods are not loaded
        spad.call("list")
        with contextlib.suppress(ServerError):  # nothing defined yet: not_found, still served
            spad.call("status", project="bench", workflow="none")
        watched = spad.own_pss()  # what watching costs: methods without pydantic
        for i in range(count):
            spad.define(f"m{i}", [{"name": "t", "function": "sleep", "params": ["600"]}])
        defined = spad.own_pss()  # definitions load pydantic and its models
        spad.call("run", project="bench", workflow="m0")
        with spad.db() as conn:
            wait_until(
                lambda: (
                    conn.execute(
                        "SELECT count(*) FROM run_tasks WHERE status = 'running'"
                    ).fetchone()[0]
                    == 1
                )
            )
            one = spad.own_pss()
            for i in range(1, count):
                spad.call("run", project="bench", workflow=f"m{i}")
            wait_until(
                lambda: (
                    conn.execute(
                        "SELECT count(*) FROM run_tasks WHERE status = 'running'"
                    ).fetchone()[0]
                    == count
                )
            )
        full = spad.own_pss()
        spad.kill_everything()
        started = time.perf_counter()
        spad.start()
        with spad.db() as conn:
            wait_until(
                lambda: (
                    conn.execute(
                        "SELECT count(*) FROM run_tasks t JOIN runs r ON r.id = t.run_id "
                        "WHERE r.finished = 0 AND r.resumed_from IS NOT NULL"
                        " AND t.status = 'running'"
                    ).fetchone()[0]
                    == count
                ),
                timeout=120,
            )
        recovery = time.perf_counter() - started
    finally:
        spad.stop()
        subprocess.run(["pkill", "-f", "sleep 600"], check=False)
    sup = Supervisord()
    try:
        sup.start(
            {
                f"m{i}": {"command": "sleep 600", "autostart": "false", "startsecs": "0"}
                for i in range(count)
            }
        )
        time.sleep(0.5)
        sup_idle = sup.pss()
        sup.rpc().supervisor.startProcess("m0", True)
        sup_one = sup.pss()
        sup.rpc().supervisor.startAllProcesses(True)
        sup_full = sup.pss()
    finally:
        sup.stop()
    floor_one = floor("memory", 1)["pss_kib"]
    floor_full = floor("memory", count)["pss_kib"]
    per = count - 1
    return {
        "W6 idle PSS MiB, before any call": {
            "spad": fresh / 1024,
            "floor": None,
            "supervisord": sup_idle / 1024,
        },
        "W6 idle PSS MiB, after status calls": {
            "spad": watched / 1024,
            "floor": None,
            "supervisord": sup_idle / 1024,
        },
        "W6 idle PSS MiB, after definitions": {
            "spad": defined / 1024,
            "floor": None,
            "supervisord": sup_idle / 1024,
        },
        "W6 PSS MiB, 1 workflow running": {
            "spad": one / 1024,
            "floor": floor_one / 1024,
            "supervisord": sup_one / 1024,
        },
        "W6 PSS MiB per further workflow": {
            "spad": (full - one) / per / 1024,
            "floor": (floor_full - floor_one) / per / 1024,
            "supervisord": (sup_full - sup_one) / per / 1024,
        },
        f"W7 s to resume {count} workflows": {"spad": recovery, "floor": None, "supervisord": None},
    }


WORKLOADS: list[Callable[[Sizes], dict[str, Metrics]]] = [
    w1_chain,
    w2_w5_fan_out,
    w3_graceful,
    w4_restart,
    w6_w7_memory_recovery,
]
SYSTEMS = ("spad", "floor", "bash", "supervisord")


def summarise(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for metric, systems in samples.items():
        row: dict[str, Any] = {}
        for system, values in systems.items():
            if values:
                row[system] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "runs": values,
                }
        spad = row.get("spad", {}).get("median")
        for other in ("floor", "supervisord"):
            value = row.get(other, {}).get("median")
            row[f"spad/{other}"] = spad / value if spad is not None and value else None
        table[metric] = row
    return table


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    median, low, high = entry["median"], entry["min"], entry["max"]
    return f"{median:.3g} ({low:.3g}-{high:.3g})" if low != high else f"{median:.3g}"


def print_table(table: dict[str, dict[str, Any]]) -> None:
    header = (
        f"{'workload':<42} {'spad':>22} {'floor':>22} {'bash':>10} {'supervisord':>22} "
        f"{'spad/floor':>10} {'spad/sup':>9}"
    )
    print(header)
    print("-" * len(header))
    for metric, row in table.items():
        ratios = [
            f"{row[k]:.2f}" if row.get(k) is not None else "-"
            for k in ("spad/floor", "spad/supervisord")
        ]
        print(
            f"{metric:<42} {_cell(row.get('spad')):>22} {_cell(row.get('floor')):>22} "
            f"{_cell(row.get('bash')):>10} {_cell(row.get('supervisord')):>22} "
            f"{ratios[0]:>10} {ratios[1]:>9}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run (CI smoke)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--only", nargs="+", metavar="W", help="workloads by name, e.g. w1_chain")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    sizes = Sizes(args.quick)
    samples: dict[str, dict[str, list[float]]] = {}
    chosen = [w for w in WORKLOADS if not args.only or w.__name__ in args.only]
    for workload in chosen:
        for _ in range(runs):
            for metric, values in workload(sizes).items():
                row = samples.setdefault(metric, {s: [] for s in SYSTEMS})
                for system, value in values.items():
                    if value is not None:
                        row[system].append(float(value))
        print(f"done: {workload.__name__}", file=sys.stderr)
    table = summarise(samples)
    print_table(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": multiprocessing.cpu_count(),
                    "python": platform.python_version(),
                    "kernel": platform.release(),
                    "spad_python": str(BIN),
                },
                "quick": args.quick,
                "runs": runs,
                "results": table,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
