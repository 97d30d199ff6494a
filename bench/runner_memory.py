"""Memory of spad's runners, side by side with the floor: a bare Python interpreter.

Starts a real server with a fresh home, runs N workflows of one sleeping task each, and reads
RSS and PSS of every runner from /proc; in the same run, N bare ``python -c sleep`` processes
are measured the same way. Prints medians and the ratio runner / floor; writes JSON.

    .venv/bin/python bench/runner_memory.py [--workflows 1 10 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spad.cli.client import Client

BIN = Path(sys.executable).parent


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def wait_for(predicate: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("bench: condition not met in time")


def measure_spad(count: int, home: Path) -> list[tuple[int, int]]:
    log = home.parent / "spad.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(BIN / "spad"), "--home", str(home), "--listen", "127.0.0.1:0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = wait_for(lambda: (m := re.search(r"serving (\S+)", log.read_text())) and m[1])
        client = Client(url, (home / "token").read_text().strip())
        workflows = [
            {"name": f"w{i}", "tasks": [{"name": "t", "function": "simple", "params": ["600"]}]}
            for i in range(count)
        ]
        client.call("create", project={"name": "bench", "workflows": workflows})
        for i in range(count):
            client.call("run", project="bench", workflow=f"w{i}")

        def all_running() -> bool:
            return all(
                client.call("status", project="bench", workflow=f"w{i}")["tasks"][0]["status"]
                == "running"
                for i in range(count)
            )

        wait_for(all_running)
        pids = runner_pids(home)
        samples = [memory_kib(pid) for pid in pids]
        for i in range(count):
            client.call("stop", project="bench", workflow=f"w{i}", force=True)
        wait_for(lambda: not runner_pids(home))
        return samples
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


def runner_pids(home: Path) -> list[int]:
    """Runners started fresh (``spad.runner HOME``) or forked (the fork server's command
    line, named ``spad-runner``); not the fork server itself."""
    found = subprocess.run(
        ["pgrep", "-f", f"spad.runner(.forkserver)? {home}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return [int(p) for p in found if _comm(int(p)) != "spad-forkserver"]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def measure_floor(count: int) -> list[tuple[int, int]]:
    bare = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        for _ in range(count)
    ]
    try:
        time.sleep(0.5)  # let them start: nothing to poll in a bare sleep
        return [memory_kib(p.pid) for p in bare]
    finally:
        for process in bare:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    print(
        f"{'N':>4} {'runner RSS':>11} {'runner PSS':>11} {'floor RSS':>10} {'floor PSS':>10}"
        f" {'PSS ratio':>10}"
    )
    for count in args.workflows:
        with tempfile.TemporaryDirectory() as folder:
            spad = measure_spad(count, Path(folder) / "home")
        floor = measure_floor(count)
        row = {
            "workflows": count,
            "runner_rss_kib": statistics.median(s[0] for s in spad),
            "runner_pss_kib": statistics.median(s[1] for s in spad),
            "floor_rss_kib": statistics.median(s[0] for s in floor),
            "floor_pss_kib": statistics.median(s[1] for s in floor),
        }
        row["pss_ratio"] = round(row["runner_pss_kib"] / row["floor_pss_kib"], 2)
        results.append(row)
        mib = {key: value / 1024 for key, value in row.items() if key.endswith("_kib")}
        print(
            f"{count:>4} {mib['runner_rss_kib']:>9.1f}MB {mib['runner_pss_kib']:>9.1f}MB"
            f" {mib['floor_rss_kib']:>8.1f}MB {mib['floor_pss_kib']:>8.1f}MB"
            f" {row['pss_ratio']:>10.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"python": sys.version, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
