"""The systems under test: spad (a real server on a free port with a fresh home) and
supervisord (from PyPI, driven over XML-RPC), each with the same few verbs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from common import free_port, kill_all, pss_kib, wait_until

from spad import procs
from spad.cli.client import Client

BIN = Path(sys.executable).parent
TRAPPER = """trap 'sleep 1; echo honoured > "$SPA_HOME/data/$SPA_TASK"; exit 0' TERM
sleep 1000 &
wait
"""
FAIL3 = 'date +%s.%N >> "$SPA_HOME/data/starts"\nexit 3\n'


class Spad:
    name = "spad"

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="spad-bench-"))
        self.home = self.folder / "home"
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Client | None = None

    def start(self) -> float:
        """Start the server; returns the seconds until it answered."""
        log = self.folder / "spad.log"
        log.write_text("")
        started = time.perf_counter()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN / "spad"), "--home", str(self.home), "--listen", "127.0.0.1:0"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = wait_until(lambda: (m := re.search(r"serving (\S+)", log.read_text())) and m[1])
        self.client = Client(url, (self.home / "token").read_text().strip())
        return time.perf_counter() - started

    def prepare_bin(self) -> None:
        for name, target in (("true", "/bin/true"), ("sleep", "/bin/sleep")):
            link = self.home / "bin" / name
            if not link.exists():
                link.symlink_to(target)
        for name, body in (("trapper", TRAPPER), ("fail3", FAIL3)):
            script = self.home / "bin" / name
            script.write_text("#!/usr/bin/env bash\n" + body)
            script.chmod(0o755)

    def call(self, method: str, **params: Any) -> Any:
        assert self.client is not None
        return self.client.call(method, **params)

    def batch(self, method: str, each: list[dict[str, Any]]) -> None:
        """``method`` for each of ``each`` in one JSON-RPC batch; every call must succeed."""
        assert self.client is not None
        failed = [r["error"] for r in self.client.batch(method, each) if "error" in r]
        assert not failed, failed[:3]

    def define(self, workflow: str, tasks: list[dict[str, Any]]) -> None:
        self.call(
            "create", project={"name": "bench", "workflows": [{"name": workflow, "tasks": tasks}]}
        )

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{self.home / 'spa.db'}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def run_status(self, conn: sqlite3.Connection, run_id: int) -> str:
        return str(conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0])

    def count_tasks(self, conn: sqlite3.Connection, run_id: int, status: str) -> int:
        return int(
            conn.execute(
                "SELECT count(*) FROM run_tasks WHERE run_id = ? AND status = ?", (run_id, status)
            ).fetchone()[0]
        )

    def own_pids(self) -> list[int]:
        """The server and its runners (and the alarm watcher, if any): not the tasks."""
        assert self.process is not None
        runners = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-f", f"spad.(runner|runner.forkserver|alarms.watcher) {self.home}"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
        ]
        return [self.process.pid, *runners]

    def own_pss(self) -> int:
        return sum(pss_kib(pid) for pid in self.own_pids())

    def kill_everything(self) -> None:
        """SIGKILL server, runners and tasks (a power cut)."""
        pids = self.own_pids()
        tasks = []
        with self.db() as conn:
            tasks = [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM run_tasks WHERE pid IS NOT NULL AND ended_at IS NULL"
                )
            ]
        kill_all(pids + tasks)
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.process is None:
            return
        pids = self.own_pids()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait()
        for pid in pids[1:]:  # runners: SIGTERM is their hard stop (tasks killed at once)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not any(pss_kib(pid) for pid in pids[1:]), timeout=30, step=0.01)
        shutil.rmtree(self.folder, ignore_errors=True)


class Supervisord:
    name = "supervisord"

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="supervisord-bench-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.programs: list[str] = []

    def start(self, programs: dict[str, dict[str, str]] | None = None) -> float:
        # Each program holds pipes and log files: thousands of programs need more descriptors.
        minfds = max(4096, 6 * len(programs or {}) + 256)
        sections = [
            # Its programs' AUTO logs in its folder too (by default they go to $TMPDIR, and
            # stay there after it).
            "[supervisord]\nnodaemon=true\nlogfile=%(here)s/supervisord.log\n"
            f"pidfile=%(here)s/supervisord.pid\nchildlogdir=%(here)s\nuser=root\n"
            f"minfds={minfds}\n",
            f"[inet_http_server]\nport=127.0.0.1:{self.port}\n",
            # supervisorctl's own default way in: often faster than the TCP one.
            "[unix_http_server]\nfile=%(here)s/supervisor.sock\n",
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
            "supervisor.rpcinterface:make_main_rpcinterface\n",
        ]
        for name, options in (programs or {}).items():
            body = "".join(f"{k}={v}\n" for k, v in options.items())
            sections.append(f"[program:{name}]\n{body}")
        self.programs = list(programs or {})
        (self.folder / "supervisord.conf").write_text("\n".join(sections))
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [str(BIN / "supervisord"), "-c", str(self.folder / "supervisord.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, step=0.01)
        return time.perf_counter() - started

    def _answers(self) -> bool:
        try:
            return self.rpc().supervisor.getState()["statename"] == "RUNNING"  # type: ignore[no-any-return]
        except OSError:
            return False

    def rpc(self) -> Any:
        return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{self.port}/RPC2")

    @property
    def socket_path(self) -> Path:
        return self.folder / "supervisor.sock"

    def states(self) -> list[str]:
        return [p["statename"] for p in self.rpc().supervisor.getAllProcessInfo()]

    def pss(self) -> int:
        assert self.process is not None
        return pss_kib(self.process.pid)

    def own_tasks(self) -> list[tuple[int, str | None]]:
        """The pids of this supervisord's programs, each with its identity (spad.procs)."""
        infos = self.rpc().supervisor.getAllProcessInfo()
        return [(info["pid"], procs.identity(info["pid"])) for info in infos if info["pid"]]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError, xmlrpc.client.Fault):
                self.rpc().supervisor.stopAllProcesses(True)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
