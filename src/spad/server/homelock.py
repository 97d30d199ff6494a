"""One server per home: a lock on ``$SPA_HOME/spad.lock`` held for the server's whole life.

A pid file alone is a guess (the pid may be recycled, the file left by a crash); ``flock`` is
released by the kernel when the process ends, however it ends, so the lock is never stale. The
file also holds the holder's pid, to name it in the refusal.
"""

from __future__ import annotations

import fcntl
import os

from spad.errors import HomeError
from spad.home import LOCK, Home


def hold(home: Home) -> int:
    """Lock the home for this process, or HomeError naming the server that holds it. Returns
    the descriptor to keep open (it is close-on-exec: runners do not inherit it)."""
    path = home.root / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise HomeError(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise HomeError(
            f"home {home.root} is in use by spad pid {holder}: one server per home "
            "(stop it first, or give another --home)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
