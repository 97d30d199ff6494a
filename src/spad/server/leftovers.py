"""What a runner that died hard left behind: every process of its session, ended.

A runner leads a session of its own (``setsid``) and its tasks stay in it, each leading its own
process group. Its tasks die with it (their parent-death signal), but their children do not:
the children are found by the task's recorded group, except those of a task started in the turn
the runner died in (its pid was never written) and those that moved to another group (a shell
with job control). All of them are still members of the dead runner's session, whose id is the
runner's pid; the kernel does not hand that pid out again while the session has a member.

A session is ended only when its leader is gone and was recorded in this boot, and only its
members that were started with this home's ``SPA_HOME``: a session id seen after the pid was
freed and reused by someone else's session is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal

from spad import procs

#: Passes over /proc per call at most: a leftover may fork while the one before is killed.
ROUNDS = 5


def end_sessions(home: str, runners: list[tuple[int, str | None]]) -> list[int]:
    """SIGKILL what the dead ``runners`` (pid, recorded identity) left in their sessions, in one
    pass over /proc for all of them (and one more to see none was forked meanwhile). Returns
    the pids killed."""
    sids = {pid for pid, recorded in runners if _gone_from_this_boot(pid, recorded)}
    killed: list[int] = []
    for _ in range(ROUNDS):
        found = [
            pid
            for members in procs.session_members(sids).values()
            for pid in members
            if pid not in killed and procs.environment_has(pid, "SPA_HOME", home)
        ]
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed.extend(found)
    return killed


def _gone_from_this_boot(pid: int, recorded: str | None) -> bool:
    """The runner ``pid`` ran in this boot and no process has its pid now (a live one with it
    is either the runner or a stranger: neither is swept)."""
    if not pid or recorded is None or not recorded.startswith(procs.BOOT_ID):
        return False
    return procs.identity(pid) is None
