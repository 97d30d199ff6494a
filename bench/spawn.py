"""What one task start costs, by way of starting it: the measurement behind W1's floor ratio.

    .venv/bin/python bench/spawn.py [--count 300] [--rounds 3]

Each way starts ``/bin/true`` ``--count`` times and waits for it, the ways taking turns:
a bare ``posix_spawn`` (what the floor pays, no parent-death signal), spad's spawn library
(vfork, parent-death signal, own group, one exec, through the runner's executor with its
output pipe), the same inside a memory cgroup of its own (a task with ``memory_max``: make the
cgroup, write the limit, step in, spawn, step out, remove it), and ``subprocess`` with a
``preexec_fn`` setting the signal (the fallback without a compiler: a full fork of the caller).
Each way is also given as a ratio to the bare ``posix_spawn`` of the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spad import cgroups
from spad.executors.base import Launch
from spad.executors.local import LocalExecutor, find_spawner

TRUE = "/bin/true"


def bare_posix_spawn(env: dict[str, str], devnull: int) -> Callable[[], None]:
    actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]

    def once() -> None:
        pid = os.posix_spawn(TRUE, [TRUE], env, file_actions=actions, setpgroup=0)
        os.waitpid(pid, 0)

    return once


def through_executor(executor: LocalExecutor, env: dict[str, str]) -> Callable[[], None]:
    launch = Launch([TRUE], env, "/", os.devnull)

    def once() -> None:
        process = executor.start(launch)
        assert process.output is not None
        os.close(process.output)
        _, status = os.waitpid(process.pid, 0)
        process.reaped(os.waitstatus_to_exitcode(status))

    return once


def in_memory_cgroup(
    executor: LocalExecutor, env: dict[str, str], hierarchy: cgroups.Hierarchy
) -> Callable[[], None]:
    plain = through_executor(executor, env)

    def once() -> None:
        group = hierarchy.create("bench", 64 << 20)
        with hierarchy.inside(group):
            plain()
        group.remove()

    return once


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ)
    devnull = os.open(os.devnull, os.O_RDWR)
    ways = {"posix_spawn (floor)": bare_posix_spawn(env, devnull)}
    spawner = find_spawner()
    if spawner is not None:
        ways["spad spawn library"] = through_executor(LocalExecutor(spawner), env)
        try:
            hierarchy = cgroups.detect()
            way = in_memory_cgroup(LocalExecutor(spawner), env, hierarchy)
            ways[f"library + cgroup v{hierarchy.version}"] = way
        except cgroups.Unavailable as exc:
            print(f"no memory cgroup ({exc}): skipped", file=sys.stderr)
    else:
        print("the spawn library is not built (no compiler at install): skipped", file=sys.stderr)
    ways["subprocess + preexec_fn"] = through_executor(LocalExecutor(None), env)
    rounds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):  # the ways take turns, so the machine's drift hits all alike
        for name, once in ways.items():
            started = time.perf_counter()
            for _ in range(args.count):
                once()
            rounds[name].append((time.perf_counter() - started) / args.count * 1000)
    print(f"ms per start of {TRUE}, {args.count} starts a round, {args.rounds} rounds")
    floor = sorted(rounds["posix_spawn (floor)"])[args.rounds // 2]
    for name, times in rounds.items():
        ratio = sorted(times)[args.rounds // 2] / floor
        print(f"{name:28} " + "  ".join(f"{ms:.3f}" for ms in times) + f"   x{ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
