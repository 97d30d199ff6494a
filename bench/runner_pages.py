"""Where a W8 runner's private memory is, by mapping, measured on the real runners of a real
server (the fork server's children):

    .venv/bin/python bench/runner_pages.py [--workflows 100]

Three servers, one after the other, each running ``--workflows`` W8 workflows (two background
``sleep`` and one awaited):

- ``at its start``: the runners are held just before they open spa.db
  (``SPAD_TEST_RUNNER_DELAY``): what a forked runner owns once it is a session of its own with
  its name, signal pipe and log, before any of its run's work. The floor of any runner. (The
  delay also keeps that fork server from rehearsing: its rehearsal would wait it out.)
- ``idle``: the runners once their three tasks run and they have let go of the store, as in
  W8.
- ``idle, no rehearsal``: the same, forked by a fork server that did not rehearse a run first
  (``SPAD_TEST_NO_REHEARSAL``, see :mod:`spad.runner.rehearsal`).

A column is the mean over the runners of their private pages (``Private_Clean`` and
``Private_Dirty`` in ``smaps``) in each mapping: ``[anon]`` is mostly Python's object arenas,
``[heap]`` the C heap (SQLite's and Python's larger objects), ``libpython`` the interpreter's
own static data (its static types, its runtime state, its method cache). Minor faults are the
pages a runner touched first, most of them copies of pages it shared with the fork server.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time

from common import kill_all, wait_until
from scale import BATCH, call_each, running_tasks, spad_processes, workflow_tasks
from systems import Spad

#: What a runner's mappings are called here: the file's name, or the kernel's name for it.
ANON = "[anon]"


def private_by_mapping(pid: int) -> collections.Counter[str]:
    mapped: collections.Counter[str] = collections.Counter()
    name = ANON
    with open(f"/proc/{pid}/smaps") as handle:
        for line in handle:
            fields = line.split()
            if not fields[0].endswith(":"):  # a mapping's first line: its range and file
                name = os.path.basename(fields[5]) if len(fields) > 5 else ANON
            elif fields[0] in ("Private_Clean:", "Private_Dirty:"):
                mapped[name] += int(fields[1])
    return mapped


def minor_faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[7])


def measure(workflows: int, held: bool, **env: str) -> tuple[dict[str, float], float]:
    """Mean private KiB by mapping and mean minor faults of the runners of ``workflows``, with
    ``env`` in the server's environment."""
    if held:
        env["SPAD_TEST_RUNNER_DELAY"] = "600"
    os.environ.update(env)
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        names = [f"w{i}" for i in range(workflows)]
        workflow = {
            "name": "bench",
            "workflows": [{"name": n, "tasks": workflow_tasks()} for n in names],
        }
        spad.call("create", project=workflow)
        call_each(spad, "run", names, BATCH)
        if held:
            wait_until(lambda: len(spad_processes(spad)["runners"]) == workflows, timeout=120)
        else:
            wait_until(lambda: running_tasks(spad) == 3 * workflows, timeout=120, step=0.05)
        time.sleep(1)  # an idle runner closes its store 0.2 s after its last statement
        runners = spad_processes(spad)["runners"]
        totals: collections.Counter[str] = collections.Counter()
        for pid in runners:
            totals.update(private_by_mapping(pid))
        faults = statistics.mean(minor_faults(pid) for pid in runners)
        return {name: kib / len(runners) for name, kib in totals.items()}, faults
    finally:
        for name in env:
            del os.environ[name]
        if held and spad.process is not None:
            # Held runners wait out their delay, deaf to SIGTERM. The server first, so that it
            # starts none again; then they go, found by their home.
            spad.process.kill()
            spad.process.wait()
            kill_all(spad.own_pids()[1:])
        spad.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--workflows", type=int, default=100)
    args = parser.parse_args()
    columns = {
        "at its start": measure(args.workflows, held=True),
        "idle": measure(args.workflows, held=False),
        "idle, no rehearsal": measure(args.workflows, held=False, SPAD_TEST_NO_REHEARSAL="1"),
    }
    names = sorted(
        {name for mapped, _ in columns.values() for name in mapped},
        key=lambda name: -columns["idle"][0].get(name, 0),
    )
    title = f"a runner, KiB private (mean of {args.workflows})"
    print(f"{title:<40}" + "".join(f"{column:>20}" for column in columns))
    for name in names:
        sizes = [mapped.get(name, 0) for mapped, _ in columns.values()]
        if max(sizes) >= 8:
            print(f"{name:<40}" + "".join(f"{size:>20.0f}" for size in sizes))
    totals = [sum(mapped.values()) for mapped, _ in columns.values()]
    print(f"{'total':<40}" + "".join(f"{total:>20.0f}" for total in totals))
    print(f"{'minor faults':<40}" + "".join(f"{faults:>20.0f}" for _, faults in columns.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
