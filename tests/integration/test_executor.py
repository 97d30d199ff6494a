"""The local executor, by both of its paths: the compiled spawn library and, without it,
``subprocess`` with a ``preexec_fn``. Each task gets SIGKILL as its parent-death signal and
starts as from a shell: its own process group, its folder, its environment, no signal blocked or
ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spad import procs
from spad.executors.base import Launch
from spad.executors.local import LocalExecutor, find_spawner
from tests.conftest import wait_for

MODES = ["library", "preexec"]

# Started as a parent of its own so the test can SIGKILL it; it blocks and ignores signals as a
# runner might, so the test sees the task does not inherit that.
PARENT = """
import signal, sys, time
from spad.executors.base import Launch
from spad.executors.local import LocalExecutor, find_spawner
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
signal.signal(signal.SIGQUIT, signal.SIG_IGN)  # as spad started from the background of a script
signal.signal(signal.SIGUSR1, lambda *_: None)
spawner = find_spawner() if sys.argv[1] == "library" else None
launch = Launch(["/bin/sleep", "60"], {"SPAD_PROBE": "yes"}, sys.argv[2], "/dev/null")
process = LocalExecutor(spawner).start(launch)
print(process.pid, flush=True)
time.sleep(60)
"""


def skip_without_library(mode: str) -> None:
    if mode == "library" and find_spawner() is None:
        pytest.skip("no C compiler here: the spawn library was not built (the fallback is tested)")


def test_the_library_is_built_by_the_setup() -> None:
    if os.environ.get("CI") or find_spawner() is not None:
        assert find_spawner() is not None, "setup.py builds libspawn.so"


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    skip_without_library(request.param)
    return str(request.param)


def status_fields(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.fixture
def parent_and_task(mode: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT, mode, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        task = int(parent.stdout.readline())
        try:
            yield parent, task
        finally:
            parent.kill()
            parent.wait()
            wait_for(lambda: procs.identity(task) is None, timeout=10, what="the task to die")


def test_a_task_dies_when_its_parent_is_killed(
    parent_and_task: tuple[subprocess.Popen[str], int],
) -> None:
    parent, task = parent_and_task
    assert procs.identity(task) is not None
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    wait_for(lambda: procs.identity(task) is None, timeout=10, what="the task to die")


def test_a_task_starts_as_from_a_shell(
    parent_and_task: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    _, task = parent_and_task
    assert os.getpgid(task) == task, "a process group of its own"
    assert os.readlink(f"/proc/{task}/cwd") == str(tmp_path)
    environ = Path(f"/proc/{task}/environ").read_bytes().split(b"\0")
    assert b"SPAD_PROBE=yes" in environ
    fields = status_fields(task)
    assert int(fields["SigBlk"], 16) == 0, "no signal blocked"
    assert int(fields["SigIgn"], 16) == 0, "SIGPIPE and the rest at their defaults"
    assert os.readlink(f"/proc/{task}/fd/0") == os.devnull


def run_to_end(mode: str, launch: Launch) -> tuple[int, str]:
    """Start ``launch`` here and wait for it: its exit code and output."""
    executor = LocalExecutor(find_spawner() if mode == "library" else None)
    try:
        process = executor.start(launch)
    except OSError as exc:  # the fallback reports a failed exec here, the engine logs it as 127
        return (127 if isinstance(exc, FileNotFoundError) else 126), str(exc)
    assert process.output is not None
    os.set_blocking(process.output, True)
    chunks = []
    while chunk := os.read(process.output, 65536):
        chunks.append(chunk)
    os.close(process.output)
    _, wait_status = os.waitpid(process.pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    process.reaped(code)  # as the runner's collect() does
    return code, b"".join(chunks).decode()


def test_output_and_exit_code_reach_the_runner(mode: str, tmp_path: Path) -> None:
    launch = Launch(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], {}, "/", "/dev/null")
    assert run_to_end(mode, launch) == (3, "out\nerr\n")


def test_a_missing_program_ends_as_127_with_the_reason(mode: str, tmp_path: Path) -> None:
    code, said = run_to_end(mode, Launch([str(tmp_path / "nope")], {}, "/", "/dev/null"))
    assert code == 127
    assert "No such file" in said


def test_a_program_that_cannot_run_ends_as_126(mode: str, tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    code, said = run_to_end(mode, Launch([str(script)], {}, "/", "/dev/null"))
    assert code == 126
    assert "Permission denied" in said


def test_a_missing_folder_is_said(tmp_path: Path) -> None:
    skip_without_library("library")
    launch = Launch(["/bin/true"], {}, str(tmp_path / "gone"), "/dev/null")
    code, said = run_to_end("library", launch)
    assert code == 127
    assert f"cannot enter {tmp_path / 'gone'}" in said
