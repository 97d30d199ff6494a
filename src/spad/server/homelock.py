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


def hold(home: Home) -> tuple[int, int]:
    """Lock the home for this process, or HomeError naming the server that holds it. Returns
    the descriptors to keep open (close-on-exec: runners do not inherit them).

    The home folder itself is locked too: a ``spad.lock`` removed by hand let a second server
    lock a new file of that name and run beside the first. The file's lock stays for a server
    of an earlier version, which locks only the file."""
    path = home.root / LOCK
    try:
        folder = os.open(home.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise HomeError(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        os.close(folder)
        who = f"spad pid {holder}" if holder else f"another spad (its {LOCK} was removed)"
        raise HomeError(
            f"home {home.root} is in use by {who}: one server per home "
            "(stop it first, or give another --home)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return folder, fd
