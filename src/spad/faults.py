"""Fault injection for tests of what real processes cannot be made to do reliably.

Never set any of these in production.

``SPAD_TEST_NO_KILL=1`` makes every SIGKILL spad would send (stop escalation, the parent-death
signal, the sweep of leftovers) a no-op, so a task that ignores SIGTERM stays alive like a
process stuck in the kernel would, and reaches ``immortal``.

``SPAD_TEST_CRASH_AT=POINT`` makes the process SIGKILL itself when it reaches the named point
(see :func:`crash_point`): the narrow windows between two steps, hit every time.

``SPAD_TEST_RUNNER_DELAY=SECONDS`` makes a runner wait that long before it claims its run, as
a runner does on a machine loaded enough to take seconds to start Python.
"""

from __future__ import annotations

import os
import signal

NO_KILL = os.environ.get("SPAD_TEST_NO_KILL") == "1"

#: ``SPAD_TEST_NO_FORKSERVER=1``: runners start as fresh interpreters (the fallback path), so
#: tests and benchmarks can exercise and compare both ways of starting them.
NO_FORKSERVER = os.environ.get("SPAD_TEST_NO_FORKSERVER") == "1"

#: ``SPAD_TEST_NO_REHEARSAL=1``: the fork server forks runners without its rehearsal first (see
#: :mod:`spad.runner.rehearsal`), so that benchmarks can compare both.
NO_REHEARSAL = os.environ.get("SPAD_TEST_NO_REHEARSAL") == "1"

#: ``SPAD_TEST_NO_CGROUP=1``: behave as on a machine without a usable memory cgroup.
NO_CGROUP = os.environ.get("SPAD_TEST_NO_CGROUP") == "1"

CRASH_AT = os.environ.get("SPAD_TEST_CRASH_AT", "")
RUNNER_DELAY = float(os.environ.get("SPAD_TEST_RUNNER_DELAY") or 0)
#: ``SPAD_TEST_RECORD_DELAY=SECONDS``: a runner waits that long between starting a local task
#: and recording it, as on a machine too loaded to get on (a hard kill then finds it unrecorded).
RECORD_DELAY = float(os.environ.get("SPAD_TEST_RECORD_DELAY") or 0)

#: The server recorded a stop request and has not signalled the runner yet.
STOP_RECORDED = "stop-recorded"
#: The server started a runner and has not recorded its pid yet.
RUNNER_SPAWNED = "runner-spawned"


def crash_point(name: str) -> None:
    """Die here, as by ``kill -9``, when ``SPAD_TEST_CRASH_AT`` names this point."""
    if name == CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)
