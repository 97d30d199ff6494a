"""Fault injection for tests of what real processes cannot be made to do reliably.

``SPAD_TEST_NO_KILL=1`` makes every SIGKILL spad would send (stop escalation, the parent-death
signal, the sweep of leftovers) a no-op, so a task that ignores SIGTERM stays alive like a
process stuck in the kernel would, and reaches ``immortal``. Never set it in production.
"""

from __future__ import annotations

import os

NO_KILL = os.environ.get("SPAD_TEST_NO_KILL") == "1"

#: ``SPAD_TEST_NO_FORKSERVER=1``: runners start as fresh interpreters (the fallback path), so
#: tests and benchmarks can exercise and compare both ways of starting them.
NO_FORKSERVER = os.environ.get("SPAD_TEST_NO_FORKSERVER") == "1"

#: ``SPAD_TEST_NO_CGROUP=1``: behave as on a machine without a usable memory cgroup.
NO_CGROUP = os.environ.get("SPAD_TEST_NO_CGROUP") == "1"
