"""A forked runner's environment is the one the server sent, whatever the fork server had."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# In a fresh interpreter, as the fork server is: what it then sees, and what a process it
# spawns inherits (the C environment, not the dict).
PROBE = """
import json, os, subprocess, sys
from spad.runner.forkserver import _set_environment
_set_environment(json.loads(sys.argv[1]))
spawned = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
print(json.dumps([dict(os.environ), dict(l.split("=", 1) for l in spawned.splitlines())]))
"""


def test_the_environment_becomes_the_one_sent() -> None:
    before = {
        "PATH": os.environ["PATH"],
        "SPAD_TEST_KEPT": "same",
        "SPAD_TEST_CHANGED": "before",
        "SPAD_TEST_DROPPED": "gone",
    }
    wanted = {
        "PATH": os.environ["PATH"],
        "SPAD_TEST_KEPT": "same",
        "SPAD_TEST_CHANGED": "after",
        "SPAD_TEST_ADDED": "new",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(wanted)],
        env=before,
        capture_output=True,
        text=True,
        check=True,
    )
    seen, inherited = json.loads(out.stdout)
    assert seen == wanted
    assert inherited == wanted
