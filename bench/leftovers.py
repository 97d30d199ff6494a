"""What ending a dead runner's session costs the server (``spad.server.leftovers``).

One call is one pass over /proc reading each process's ``stat`` (and, for members of a dead
runner's session only, its environment). Measured beside the floor, a bare pass that opens and
reads every ``/proc/PID/stat``, in the same run; with nothing to kill, as after most deaths.

    .venv/bin/python bench/leftovers.py [--runners 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spad import procs
from spad.server import leftovers


def best_ms(work: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def bare_pass() -> None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    handle.read()
            except OSError:
                continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", type=int, default=100, help="dead runners at a start")
    args = parser.parse_args()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid of this boot with no process: what a dead runner leaves
    dead: list[tuple[int, str | None]] = [(gone.pid, f"{procs.BOOT_ID}:1")] * args.runners
    count = sum(name.isdigit() for name in os.listdir("/proc"))
    floor = best_ms(bare_pass)
    one = best_ms(lambda: leftovers.end_sessions("/nowhere", dead[:1]))
    batch = best_ms(lambda: leftovers.end_sessions("/nowhere", dead))
    each = best_ms(lambda: [leftovers.end_sessions("/nowhere", [d]) for d in dead], 3)
    print(f"{count} processes; floor (a bare pass over /proc/*/stat): {floor:.2f} ms")
    print(f"one dead runner:                     {one:7.2f} ms  {one / floor:5.2f} x floor")
    print(f"{args.runners} dead runners, one pass (start): {batch:7.2f} ms  {batch / floor:5.2f} x")
    print(f"{args.runners} dead runners, one by one:       {each:7.2f} ms  {each / floor:5.2f} x")


if __name__ == "__main__":
    main()
