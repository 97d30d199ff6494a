"""The floor: what a minimal asyncio loop of subprocesses does on this machine.

``python bench/floor.py WORKLOAD N [ARG]`` prints one JSON object. A pidfd child watcher reaps
(as spad's server watches runners); nothing is recorded anywhere, nothing survives a crash:
it is the cost of the work itself, the bar spad is measured against.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TRAPPER = """trap 'sleep 1; echo honoured > "$0.$$"; exit 0' TERM
sleep 1000 &
wait
"""


def _pss() -> int:
    with open("/proc/self/smaps_rollup") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))


async def chain(count: int) -> dict[str, Any]:
    started = time.perf_counter()
    for _ in range(count):
        process = await asyncio.create_subprocess_exec("/bin/true")
        await process.wait()
    return {"seconds": time.perf_counter() - started}


async def fan_out(count: int) -> dict[str, Any]:
    started = time.perf_counter()
    processes = [
        await asyncio.create_subprocess_exec("sleep", "30", process_group=0) for _ in range(count)
    ]
    spawned = time.perf_counter() - started
    pss = _pss()
    stop_started = time.perf_counter()
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    await asyncio.gather(*(p.wait() for p in processes))
    return {"seconds": spawned, "pss_kib": pss, "stop_seconds": time.perf_counter() - stop_started}


async def graceful(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="floor-bench-") as name:
        folder = Path(name)
        script = folder / "trapper"
        script.write_text("#!/usr/bin/env bash\n" + TRAPPER)
        script.chmod(0o755)
        processes = [
            await asyncio.create_subprocess_exec(str(folder / "trapper"), process_group=0)
            for _ in range(count)
        ]
        await asyncio.sleep(0.5)  # let every trap be installed (bash needs a moment to start)
        started = time.perf_counter()
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        await asyncio.gather(*(p.wait() for p in processes))
        elapsed = time.perf_counter() - started
        honoured = len(list(folder.glob("trapper.*")))
    return {"seconds": elapsed, "honoured": honoured}


async def restart(delay: float) -> dict[str, Any]:
    starts = []
    for _ in range(2):
        starts.append(time.perf_counter())
        process = await asyncio.create_subprocess_exec("sh", "-c", "exit 3")
        code = await process.wait()
        ended = time.perf_counter()
        await asyncio.sleep(max(0.0, delay - (time.perf_counter() - ended)))
    return {"seconds": starts[1] - starts[0], "exit_code": code}


async def memory(count: int) -> dict[str, Any]:
    processes = [await asyncio.create_subprocess_exec("sleep", "30") for _ in range(count)]
    pss = _pss()
    for process in processes:
        process.kill()
    await asyncio.gather(*(p.wait() for p in processes))
    return {"pss_kib": pss}


WORKLOADS = {"chain": chain, "fan_out": fan_out, "graceful": graceful, "memory": memory}


def main() -> int:
    workload, number = sys.argv[1], float(sys.argv[2])
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    if workload == "restart":
        result = asyncio.run(restart(number))
    else:
        result = asyncio.run(WORKLOADS[workload](int(number)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
