"""Shared fixtures: a real spad server on a free port with its own home, and clean-up of every
process it (and its runners) started."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spad import procs
from spad.cli.client import Client

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "definition.json"
DEADLINE = 30.0


def wait_for(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without SPA_* and without the virtualenv on PATH (as under systemd)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPA_")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN
    )
    env.update(extra)
    return env


def procs_with(text: str) -> list[int]:
    """Live processes whose command line contains ``text``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{name}/cmdline", "rb") as handle:
                if text.encode() in handle.read().replace(b"\0", b" "):
                    found.append(int(name))
    return found


def comm(pid: int) -> str:
    """The process's name (``ps -o comm``), empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def forkserver_pids(home: Path) -> list[int]:
    """The fork server itself; the runners it forked share its command line, not its name."""
    return [
        p for p in procs_with(f"spad.runner.forkserver {home} ") if comm(p) == "spad-forkserver"
    ]


def home_processes(home: Path) -> dict[int, dict[str, str]]:
    """Live processes started with ``SPA_HOME`` = ``home`` (tasks and all they started, hooks,
    the alarm watcher), whatever the store recorded: pid -> their ``SPA_*`` variables."""
    found: dict[int, dict[str, str]] = {}
    wanted = f"SPA_HOME={home}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            if wanted in environ and procs.identity(int(name)) is not None:  # (not a zombie)
                found[int(name)] = dict(
                    item.decode(errors="replace").split("=", 1)
                    for item in environ
                    if item.startswith(b"SPA_") and b"=" in item
                )
    return found


def runners_of(home: Path) -> dict[int, int | None]:
    """Live runners of ``home``: pid -> its run id when its command line says it (started as
    ``python -m spad.runner HOME RUN_ID``), None when forked by the fork server (whose command
    line it keeps; its name says ``spad-runner``)."""
    found: dict[int, int | None] = {}
    for pid in procs_with(f"spad.runner {home} ") + procs_with(f"spad.runner.forkserver {home} "):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            name = Path(f"/proc/{pid}/comm").read_bytes().strip()
            if procs.identity(pid) is None:
                continue
            if args[-3:-1] == [b"spad.runner", str(home).encode()] and args[-1].isdigit():
                found[pid] = int(args[-1])
            elif b"spad.runner.forkserver" in args and name == b"spad-runner":
                found[pid] = None
    return found


@dataclass
class Server:
    home: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    stderr_path: Path | None = None
    #: Signals spad starts with ignored (as from the background of a script: SIGINT, SIGQUIT).
    ignored_signals: tuple[int, ...] = ()

    def start(self, *extra: str) -> Server:
        self.stderr_path = self.home.parent / f"spad-{time.monotonic_ns()}.log"
        with self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [
                    str(VENV_BIN / "spad"),
                    "--home",
                    str(self.home),
                    "--listen",
                    "127.0.0.1:0",
                    *extra,
                ],
                stdout=err,
                stderr=subprocess.STDOUT,
                env=clean_env(**self.env),
                preexec_fn=self._ignore_signals if self.ignored_signals else None,  # noqa: PLW1509
            )
        self.url = wait_for(self._announced_url, what="the server to listen")
        return self

    def _ignore_signals(self) -> None:
        for signum in self.ignored_signals:
            signal.signal(signum, signal.SIG_IGN)

    def _announced_url(self) -> str | None:
        assert self.process is not None and self.stderr_path is not None
        if self.process.poll() is not None:
            raise AssertionError(f"spad exited: {self.stderr_path.read_text()}")
        match = re.search(r"serving (https?://\S+)", self.stderr_path.read_text())
        return match.group(1) if match else None

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def client(self) -> Client:
        return Client(self.url, self.token)

    def call(self, method: str, **params: Any) -> Any:
        return self.client().call(method, **params)

    def post(
        self, body: bytes | str, headers: dict[str, str] | None = None, path: str = "/rpc"
    ) -> tuple[int, Any]:
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        all_headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            **(headers or {}),
        }
        for key, value in all_headers.items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
                return response.status, json.loads(payload) if payload else None
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            return exc.code, json.loads(payload) if payload else None

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(timeout=DEADLINE)

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.home / "spa.db", timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def status(self, workflow: str, project: str = "pr1") -> dict[str, Any]:
        result: dict[str, Any] = self.call("status", project=project, workflow=workflow)
        return result

    def wait_status(
        self,
        workflow: str,
        wanted: str | Callable[[str], bool],
        project: str = "pr1",
        timeout: float = DEADLINE,
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            state = self.status(workflow, project)
            ok = wanted(state["status"]) if callable(wanted) else state["status"] == wanted
            return state if ok else None

        result: dict[str, Any] = wait_for(check, timeout, f"{project}/{workflow} to be {wanted}")
        return result

    def task(self, workflow: str, name: str, project: str = "pr1") -> dict[str, Any]:
        tasks = self.status(workflow, project)["tasks"]
        return next(t for t in tasks if t["name"] == name)

    def wait_task(
        self,
        workflow: str,
        name: str,
        wanted: str | Callable[[str], bool],
        project: str = "pr1",
        timeout: float = DEADLINE,
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            task = self.task(workflow, name, project)
            ok = wanted(task["status"]) if callable(wanted) else task["status"] == wanted
            return task if ok else None

        result: dict[str, Any] = wait_for(check, timeout, f"task {name} to be {wanted}")
        return result

    def wait_trapped(self, workflow: str, name: str, project: str = "pr1") -> None:
        """Until the ``stubborn`` sample has set its trap (it says so): "running" only means
        started, and a SIGTERM before the trap would end it at once."""

        def said() -> bool:
            try:
                text = self.call("logs", project=project, workflow=workflow, task=name)
            except Exception:  # no attempt yet
                return False
            return "ignoring SIGTERM" in str(text)

        wait_for(said, what=f"{name} to ignore SIGTERM")

    def define(self, workflow: str, *tasks: dict[str, Any], **fields: Any) -> None:
        """Create ``workflow`` in pr1 with these tasks."""
        self.call("create", **tree([{"name": workflow, "tasks": list(tasks), **fields}]))

    def define_spare(self) -> None:
        """A second workflow, never run: from two workflows defined on, runners are forked by
        the fork server (``runner_start.FORK_SERVER_FROM``); with one they start afresh."""
        self.define("spare", task("t", "simple", "0"))

    def script(self, name: str, body: str) -> None:
        """A bash script in the home's bin/."""
        path = self.home / "bin" / name
        path.write_text("#!/usr/bin/env bash\n" + body)
        path.chmod(0o755)

    def no_process_left(self) -> None:
        wait_for(lambda: not self.processes(), timeout=10, what="every process of the home to end")

    def processes(self) -> list[int]:
        """Live processes that belong to this home: runners, the tasks they recorded, every
        process started with this home's ``SPA_HOME``, and the alarm watcher; not the running
        server's fork server (it has the runners' environment, and lives as long as the
        server)."""
        found = set(procs_with(f"spad.alarms.watcher {self.home}")) | set(
            home_processes(self.home)  # what the store may not have recorded (a task's child)
        )
        if self.process is not None and self.process.poll() is None:
            found -= set(procs.children(self.process.pid)) & set(
                procs_with(f"spad.runner.forkserver {self.home} ")
            )  # (by its command line: it takes its name a moment after it started)
        if not (self.home / "spa.db").exists():
            return sorted(found)
        with contextlib.closing(self.db()) as conn:
            for row in conn.execute("SELECT runner_pid, runner_identity FROM runs"):
                if procs.is_alive(row[0], row[1]):
                    found.add(row[0])
            for row in conn.execute("SELECT pid, pid_identity FROM run_tasks WHERE pid > 0"):
                if procs.is_alive(row[0], row[1]):
                    found.add(row[0])
                found.update(
                    procs.group_members(row[0])
                    if row[1] and procs.identity(row[0]) in (None, row[1])
                    else []
                )
        return sorted(found)

    def kill_everything(self) -> None:
        """SIGKILL the server and every process of this home (a power cut, or clean-up)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for _ in range(3):
            for pid in self.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not self.processes(), timeout=5)
                return


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A fresh store in a real SQLite file, schema applied."""
    from spad.store.sqlite import connect, migrate

    connection = connect(tmp_path / "spa.db")
    migrate(connection)
    yield connection
    connection.close()


def run_spad(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``spad`` command, as a user runs it (without the virtualenv on PATH)."""
    return subprocess.run(
        [str(VENV_BIN / "spad"), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    spad = Server(home)
    try:
        yield spad.start()
    finally:
        spad.kill_everything()


@pytest.fixture
def make_server(home: Path) -> Iterator[Callable[..., Server]]:
    """For tests that restart the server or give it an environment."""
    made: list[Server] = []

    def make(**env: str) -> Server:
        spad = Server(home, env=env)
        made.append(spad)
        return spad

    yield make
    for spad in made:
        spad.kill_everything()


def seed() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return result


def tree(workflows: list[dict[str, Any]], project: str = "pr1") -> dict[str, Any]:
    return {"context": {"project": {"name": project, "workflows": workflows}}}


def task(name: str, function: str = "simple", *params: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "function": function, "params": list(params), **fields}


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A private PostgreSQL cluster (scripts/test installs the server when missing)."""
    from tests import postgres as pg

    cluster = pg.make()
    if cluster is None:
        if os.environ.get("CI"):
            raise AssertionError("PostgreSQL is not installed: scripts/postgres-install")
        pytest.skip("PostgreSQL is not installed: run scripts/postgres-install")
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Any]:
    """A single-node Slurm cluster (scripts/slurm-cluster installs Slurm when missing)."""
    from tests import slurm

    with slurm.session() as (cluster, why):
        if cluster is None:
            pytest.skip(f"SLURM TESTS SKIPPED: {why}")
        yield cluster


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "the chaos suite (tests/chaos)")
    group.addoption(
        "--cycles", type=int, default=50, help="chaos cycles to run (default 50, as in CI)"
    )
    group.addoption(
        "--chaos-seed",
        type=int,
        default=None,
        help="the first cycle's seed (default: a new one, printed); a breach names its own",
    )
