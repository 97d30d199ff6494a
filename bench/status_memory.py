"""What ``status`` with ``memory: true`` costs: each live task's RSS read from /proc.

    .venv/bin/python bench/status_memory.py [--tasks 200] [--calls 100] [--rounds 3]

One workflow of ``--tasks`` parallel ``sleep 3600`` tasks runs; plain ``status`` (SQLite builds
the reply) and ``status`` with ``memory`` take turns, ``--calls`` each a round. Printed: ms per
call, and the ratio of the memory variant to the plain one of the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import wait_until
from systems import Spad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        tasks = [
            {"name": f"t{i}", "function": "sleep", "params": ["3600"], "exec": "parallel"}
            for i in range(args.tasks)
        ]
        spad.define("many", tasks)
        run_id = spad.call("run", project="bench", workflow="many")["run_id"]
        with spad.db() as conn:
            wait_until(lambda: spad.count_tasks(conn, run_id, "running") == args.tasks, 120)
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for memory in (False, True):
                started = time.perf_counter()
                for _ in range(args.calls):
                    spad.call("status", project="bench", workflow="many", memory=memory)
                times[memory].append((time.perf_counter() - started) / args.calls * 1000)
        plain, with_memory = (sorted(times[m])[args.rounds // 2] for m in (False, True))
        print(f"status of {args.tasks} running tasks, ms per call ({args.rounds} rounds)")
        print("plain        " + "  ".join(f"{ms:.2f}" for ms in times[False]))
        print("memory: true " + "  ".join(f"{ms:.2f}" for ms in times[True]))
        print(f"ratio (medians): x{with_memory / plain:.2f}")
    finally:
        spad.kill_everything()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
