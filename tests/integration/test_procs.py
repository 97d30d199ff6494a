"""Process identity and family from /proc, on real processes."""

from __future__ import annotations

import os
import subprocess

from spad import procs


def test_identity_is_boot_and_start_time_and_none_for_the_dead() -> None:
    with subprocess.Popen(["sleep", "60"]) as child:
        identity = procs.identity(child.pid)
        assert identity is not None and identity.startswith(procs.BOOT_ID + ":")
        assert procs.is_alive(child.pid, identity)
        child.kill()
        child.wait()
    assert procs.identity(child.pid) is None
    assert not procs.is_alive(child.pid, identity)


def test_every_child_is_found_when_the_list_is_longer_than_a_page() -> None:
    """/proc/PID/task/TID/children of 1000 pids is about 6 KB: more than one read."""
    children = [subprocess.Popen(["sleep", "60"]) for _ in range(1000)]
    try:
        assert set(procs.children(os.getpid())) >= {child.pid for child in children}
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()
