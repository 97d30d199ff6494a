"""``python -m spad.runner.forkserver HOME``: a pre-loaded parent that forks runners.

A runner started as a fresh interpreter costs about 35 ms of CPU and 5.4 MiB PSS of its own;
forked from this process, which has already imported everything a runner uses and frozen
those objects out of the garbage collector's reach (``gc.freeze``), it costs a fork and
shares those pages. The server starts it at its first run and talks to it over a
``SOCK_SEQPACKET`` socket pair: one message ``{"run_id", "env"}`` in, one ``{"pid"}`` or
``{"error"}`` out. It dies with the server (parent-death signal); the runners it forked do
not: each is a session of its own, watched by the server like any adopted runner.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import socket
import sys
import traceback

from spad import home as layout
from spad.executors.local import find_spawner
from spad.runner import main as runner_main

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def _name_process(name: bytes) -> None:
    """What ``ps -o comm`` and ``top`` show: runners share the fork server's command line."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


MESSAGE_MAX = 1 << 20


def _die_with_parent(parent: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the server died before the line above
        os._exit(0)


def _become_runner(home: str, run_id: int, env: dict[str, str], log_path: str) -> int:
    """In the child: what ``python -m spad.runner HOME RUN_ID`` would be, minus its start."""
    os.setsid()
    _name_process(b"spad-runner")
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the runner reaps its own tasks
    gc.enable()
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    _set_environment(env)
    try:
        return runner_main.main([home, str(run_id)])
    except SystemExit as end:
        if isinstance(end.code, str):
            print(end.code, file=sys.stderr)
            return 1
        return int(end.code or 0)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _set_environment(env: dict[str, str]) -> None:
    """Make ``os.environ`` be ``env``, changing only what differs: the fork server's own
    environment is mostly the same, and every string replaced is a page copied (clearing and
    filling it cost each runner about 0.3 MiB of private memory)."""
    for key in [key for key in os.environ if key not in env]:
        del os.environ[key]
    for key, value in env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def serve(home: str, channel: socket.socket) -> None:
    log_path = os.path.join(home, layout.LOGS, layout.RUNNERS_LOG)
    while True:
        message = channel.recv(MESSAGE_MAX)
        if not message:  # the server closed its end: it is going down
            return
        try:
            request = json.loads(message)
            run_id, env = int(request["run_id"]), dict(request["env"])
        except (ValueError, KeyError, TypeError) as error:
            channel.send(json.dumps({"error": f"bad request: {error}"}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            channel.close()
            os._exit(_become_runner(home, run_id, env, log_path))
        channel.send(json.dumps({"pid": pid}).encode())


def main() -> int:
    if len(sys.argv) != 4 or not (sys.argv[2].isdigit() and sys.argv[3].isdigit()):
        print("usage: python -m spad.runner.forkserver HOME SERVER_PID CHANNEL_FD", file=sys.stderr)
        return 2
    _die_with_parent(int(sys.argv[2]))
    _name_process(b"spad-forkserver")
    # Runners are reaped by the kernel: nobody here needs their exit codes.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the server's to handle
    find_spawner()  # load the spawn library now: every runner uses this one
    gc.collect()
    gc.freeze()  # what is loaded now stays on pages the runners share
    channel = socket.socket(fileno=int(sys.argv[3]))
    serve(os.path.abspath(sys.argv[1]), channel)
    return 0


if __name__ == "__main__":
    gc.disable()  # no collection may touch (and so copy) the shared pages before the freeze
    sys.exit(main())
