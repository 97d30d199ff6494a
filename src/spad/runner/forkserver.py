"""``python -m spad.runner.forkserver HOME SERVER_PID CHANNEL_FD [WORKFLOWS]``: a pre-loaded
parent that forks runners (WORKFLOWS: how many are defined, which sets how long it rehearses).

A runner started as a fresh interpreter costs about 35 ms of CPU and 5.4 MiB PSS of its own;
forked from this process, which has already imported everything a runner uses and frozen
those objects out of the garbage collector's reach (``gc.freeze``), it costs a fork and
shares those pages. The server starts it at its first run, with the environment its runners
get, and talks to it over a ``SOCK_SEQPACKET`` socket pair: a run id in, the runner's pid (or
``error: ...``) out, both in ASCII digits.

What this process does after each fork is kept that small on purpose: a page it writes after
a fork is copied for it, and the runner forked just before keeps the old page for itself
alone. Reading a JSON request and its environment after each fork made every runner own
0.3 MiB of this process's pages (bench/RESULTS.md, W8). It dies with the server
(parent-death signal); the runners it forked do not: each is a session of its own, watched
by the server like any adopted runner.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time

from spad import faults, freed, logfiles, procs
from spad import home as layout
from spad.executors.local import find_spawner
from spad.numerals import ascii_int
from spad.runner import main as runner_main
from spad.runner import rehearsal, signals

#: A request is a run id: a few digits.
MESSAGE_MAX = 64


def _become_runner(home: str, run_id: int, log_path: str) -> int:
    """In the child: what ``python -m spad.runner HOME RUN_ID`` would be, minus its start."""
    os.setsid()
    signals.set_handler(signal.SIGCHLD, signal.SIG_DFL)  # the runner reaps its own tasks
    gc.enable()
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = logfiles.open_for_appending(log_path)  # the run goes on without it, if need be
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    try:
        return runner_main.main([home, str(run_id)])
    except SystemExit as end:
        if isinstance(end.code, str):
            print(end.code, file=sys.stderr)
            return 1
        return int(end.code or 0)
    except BaseException:
        import traceback  # a runner that crashed, only: the fork server does without it

        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def serve(home: str, channel: int) -> None:
    """Fork a runner for each run id read from ``channel`` (a ``SOCK_SEQPACKET`` socket's
    descriptor: a read is one message, a write one reply; no ``socket`` module, which would
    cost the fork server 0.3 MiB that W2 counts whole)."""
    log_path = os.path.join(home, layout.LOGS, layout.RUNNERS_LOG)
    while True:
        message = os.read(channel, MESSAGE_MAX)
        if not message:  # the server closed its end: it is going down
            return
        if not message.isdigit():
            os.write(channel, b"error: bad request: a run id is digits, got %r" % message[:20])
            continue
        pid = os.fork()
        if pid == 0:
            os.close(channel)
            os._exit(_become_runner(home, int(message), log_path))
        os.write(channel, b"%d" % pid)


def _rehearse(workflows: int) -> None:
    """The rehearsal (:mod:`spad.runner.rehearsal`) for ``workflows`` defined, said in
    runners.log either way."""
    began = time.monotonic()
    ended, done = rehearsal.rehearse(
        os.environ.get("TMPDIR") or "/tmp", rehearsal.rounds_for(workflows)
    )
    if ended == rehearsal.ENDED:
        took = (time.monotonic() - began) * 1000
        runs = "a run" if done == 1 else f"{done} runs"
        said = f"rehearsed {runs} in {took:.0f} ms (workflows defined: {workflows})"
    else:
        said = f"rehearsal {ended}"
    # Straight to the descriptor: nothing left in a buffer that every runner would inherit, and
    # a runners.log that cannot be written (a full disk) ends nothing.
    with contextlib.suppress(OSError):
        os.write(2, f"spad fork server: {said}\n".encode())


def main() -> int:
    numbers = [number for number in map(ascii_int, sys.argv[2:]) if number is not None]
    if len(sys.argv) not in (4, 5) or len(numbers) != len(sys.argv) - 2:
        print(
            "usage: python -m spad.runner.forkserver HOME SERVER_PID CHANNEL_FD [WORKFLOWS]",
            file=sys.stderr,
        )
        return 2
    server_pid, channel = numbers[:2]
    # Without WORKFLOWS (a server of a version before it, upgraded under it): one round.
    workflows = numbers[2] if len(numbers) == 3 else 0
    procs.die_with_parent(server_pid)
    procs.set_name(b"spad-forkserver")
    # The channel is ours: not for the rehearsal's tasks to inherit (runners close it).
    os.set_inheritable(channel, False)
    # Runners are reaped by the kernel: nobody here needs their exit codes. (The rehearsal
    # handles both signals while it runs, and gives them back.)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the server's to handle
    find_spawner()  # load the spawn library now: every runner uses this one
    if not faults.NO_REHEARSAL:
        _rehearse(workflows)
    gc.collect()
    freed.give_back()  # what the rehearsal freed: not ours to keep resident
    freed.take_free_chunks()  # a runner's allocations go to fresh pages, not our scattered holes
    gc.freeze()  # what is loaded now stays on pages the runners share
    serve(os.path.abspath(sys.argv[1]), channel)
    return 0


if __name__ == "__main__":
    gc.disable()  # no collection may touch (and so copy) the shared pages before the freeze
    sys.exit(main())
