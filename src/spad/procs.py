"""Process identity and safe signalling, from /proc. Standard library only.

A pid alone is not an identity: after a reboot or a long time it names another process. An
identity is the boot id plus the process's start time (in clock ticks since boot), so a
recycled pid is never adopted or killed by mistake.
"""

from __future__ import annotations

import ctypes
import os
import signal

_PROC = "/proc"


def _read(path: str) -> str:
    """A small /proc file, without a file object (a quarter of the cost: the runner reads one
    for every task it starts)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 4096)]
        while chunks[-1]:  # most are one read; a `children` list of thousands is longer
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _boot_id() -> str:
    try:
        return _read(f"{_PROC}/sys/kernel/random/boot_id").strip()
    except OSError:
        return "unknown-boot"


BOOT_ID = _boot_id()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces and parens)."""
    try:
        text = _read(f"{_PROC}/{pid}/stat")
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def identity(pid: int) -> str | None:
    """``<boot id>:<start time>`` of a live process, or None when there is none (or a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return None
    return f"{BOOT_ID}:{fields[19]}"


def is_alive(pid: int | None, expected: str | None) -> bool:
    """True when ``pid`` still runs and is the same process as when ``expected`` was taken."""
    return bool(pid) and expected is not None and identity(pid or 0) == expected


#: Fields of /proc/PID/stat after the command name: the process group's id, the session's.
_PGRP, _SESSION = 2, 3


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    return _members(_PGRP, {pgid}).get(pgid, [])


def session_members(sids: set[int]) -> dict[int, list[int]]:
    """Live processes (zombies aside) of the sessions ``sids``, from one pass over /proc."""
    return _members(_SESSION, sids)


def _members(field: int, ids: set[int]) -> dict[int, list[int]]:
    """Live processes whose stat ``field`` is one of ``ids``, by that id: one pass over /proc."""
    members: dict[int, list[int]] = {}
    if not ids:
        return members
    for name in os.listdir(_PROC):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields and fields[0] != "Z" and int(fields[field]) in ids:
                members.setdefault(int(fields[field]), []).append(int(name))
    return members


def environment_has(pid: int, name: str, value: str) -> bool:
    """True when ``pid`` was started with ``name=value`` in its environment."""
    try:
        text = _read(f"{_PROC}/{pid}/environ")
    except OSError:
        return False
    return f"{name}={value}" in text.split("\0")


def kill_group(pgid: int, signum: int = signal.SIGKILL) -> bool:
    """Signal a process group; False when it has no member left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def kill_recorded_group(pid: int, recorded: str | None, signum: int = signal.SIGKILL) -> bool:
    """SIGKILL the group a task led, when it is still that task's group.

    The group is ours when its leader is the recorded process, or when the leader is gone:
    the kernel never hands out a pid that is still some group's id, so a leaderless group with
    members is the one the task left behind. A live leader of another identity means the pid
    was recycled: touch nothing.
    """
    if recorded is None or not recorded.startswith(BOOT_ID):
        return False
    current = identity(pid)
    if current is not None and current != recorded:
        return False
    return kill_group(pid, signum)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"{_PROC}/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            found.extend(int(c) for c in _read(f"{_PROC}/{pid}/task/{thread}/children").split())
        except OSError:
            continue
    return found


def resident_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (what a task's processes hold)."""
    total = 0
    for member in (pid, *descendants(pid)):
        fields = _stat_fields(member)
        if fields is not None and len(fields) > 21:
            total += int(fields[21]) * _PAGE  # rss, in pages
    return total


_PAGE = os.sysconf("SC_PAGE_SIZE")


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    stack = children(pid)
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children(child))
    return found


_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
#: Loaded once: each ``CDLL`` made anew builds a class of its own (a forked runner's pages).
_libc = ctypes.CDLL(None, use_errno=True)


def set_name(name: bytes) -> None:
    """This process's name, as ``ps -o comm`` and ``top`` show it (at most 15 bytes)."""
    _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def become_subreaper() -> None:
    """Orphans among our descendants become our children, to be reaped (and killed) by us."""
    _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def die_with_parent(parent: int) -> None:
    """SIGKILL for this process when ``parent`` dies, even by SIGKILL (a child sets it for
    itself: before its exec, or after it, as the fork server does)."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died between fork and prctl
        os._exit(1)
