"""How the server starts a runner: forked by the fork server, or as a fresh interpreter.

The fork server (``spad.runner.forkserver``) is started at the first run once
:data:`FORK_SERVER_FROM` workflows are defined, with the runners' environment, and lives as
long as the server; a start that asks for another environment starts a new one. With fewer
workflows, and should it be unusable (it died, or does not answer within a few seconds), the
runner is started as ``python -m spad.runner``: slower to start, never wrong.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from spad import logfiles

log = logging.getLogger("spad.runners")

#: How long a fork may take before the fork server is given up for this start.
ANSWER_TIMEOUT = 5.0
#: Workflows defined from which runners are forked. The fork server's own memory (6 MiB of
#: PSS) pays off from the second runner: a forked runner owns 2 MiB, a fresh interpreter 5.4.
#: With one workflow a fresh runner costs 3 MiB less, and starting it takes no longer than
#: starting the fork server would (bench/RESULTS.md, "W2 without a fork server").
FORK_SERVER_FROM = 2


class RunnerStarter:
    def __init__(
        self,
        home: Path,
        log_path: Path,
        workflows: Callable[[], int],
        use_forkserver: bool = True,
    ) -> None:
        self.home = home
        self.log_path = log_path
        #: How many workflows are defined, read while no fork server runs: whether to start
        #: one, and how long it rehearses.
        self._workflows = workflows
        self._use_forkserver = use_forkserver
        self._forkserver: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None
        self._env: dict[str, str] | None = None  # the fork server's, so its runners'

    def start(self, run_id: int, env: dict[str, str]) -> tuple[int, subprocess.Popen[bytes] | None]:
        """Start the runner of ``run_id`` with ``env``; returns its pid, and the Popen when it
        is our child (its exit code can then be read)."""
        if self._use_forkserver:
            try:
                pid = self._fork(run_id, env)
                if pid is not None:
                    return pid, None
            except OSError as error:
                log.warning("fork server unusable (%s): starting run %s directly", error, run_id)
                self.close()
        return self._exec(run_id, env)

    def _fork(self, run_id: int, env: dict[str, str]) -> int | None:
        """The forked runner's pid; None where too few workflows are defined for a fork
        server to pay off."""
        channel = self._channel
        if channel is None or not self._alive() or env != self._env:
            workflows = self._count()
            if workflows is not None and workflows < FORK_SERVER_FROM:
                return None
            channel = self._start_forkserver(env, workflows or 0)
        channel.send(b"%d" % run_id)
        reply = channel.recv(4096) or b"error: fork server ended"
        if not reply.isdigit():
            raise OSError(reply.decode(errors="replace").removeprefix("error: "))
        return int(reply)

    @property
    def forkserver_pid(self) -> int | None:
        """The fork server's pid while it runs."""
        return self._forkserver.pid if self._alive() and self._forkserver else None

    def _alive(self) -> bool:
        return self._forkserver is not None and self._forkserver.poll() is None

    def _count(self) -> int | None:
        """The workflows defined; None when the store cannot say now (busy, damaged): then a
        fork server is started all the same, with the short rehearsal."""
        try:
            return self._workflows()
        except sqlite3.Error as exc:
            log.warning("workflows defined unknown (%s): the fork server rehearses one run", exc)
            return None

    def _start_forkserver(self, env: dict[str, str], workflows: int) -> socket.socket:
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self._log() as out:
                self._forkserver = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "spad.runner.forkserver",
                        str(self.home),
                        str(os.getpid()),
                        str(theirs.fileno()),
                        str(workflows),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    pass_fds=(theirs.fileno(),),
                    cwd=self.home,
                    env=env,
                )
        finally:
            theirs.close()
        ours.settimeout(ANSWER_TIMEOUT)
        self._channel, self._env = ours, env
        return ours

    def _exec(self, run_id: int, env: dict[str, str]) -> tuple[int, subprocess.Popen[bytes]]:
        with self._log() as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "spad.runner", str(self.home), str(run_id)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=env,
                cwd=self.home,
            )
        return child.pid, child

    def _log(self) -> BinaryIO:
        """runners.log for a child's output (see :func:`logfiles.open_for_appending`)."""
        return os.fdopen(logfiles.open_for_appending(self.log_path), "ab")

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()  # the fork server reads the end and exits
            self._channel = None
        if self._forkserver is not None:
            try:
                self._forkserver.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._forkserver.kill()
                self._forkserver.wait()
            self._forkserver = None
