"""The local executor: each task gets SIGKILL as its parent-death signal, through the
``spad-exec`` helper or, without it, between fork and exec."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from spad import procs
from spad.executors.local import find_helper
from tests.conftest import wait_for

PARENT = """
import sys, time
from spad.executors.base import Launch
from spad.executors.local import LocalExecutor
helper = sys.argv[1] or None
process = LocalExecutor(helper).start(Launch(["/bin/sleep", "60"], {}, "/", "/dev/null"))
print(process.pid, flush=True)
time.sleep(60)
"""


def test_the_helper_is_built_by_the_setup() -> None:
    if os.environ.get("CI") or find_helper() is not None:
        assert find_helper() is not None, "scripts/bootstrap builds .venv/bin/spad-exec"


@pytest.mark.parametrize("mode", ["helper", "preexec"])
def test_a_task_dies_when_its_parent_is_killed(mode: str) -> None:
    helper = find_helper() if mode == "helper" else ""
    if mode == "helper" and helper is None:
        pytest.skip("no C compiler here: spad-exec was not built (the fallback is tested)")
    with subprocess.Popen(
        [sys.executable, "-c", PARENT, helper or ""], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert procs.identity(child) is not None
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_for(lambda: procs.identity(child) is None, timeout=10, what="the child to die")
