"""Task log files: where they live, how they are capped and rotated, how they are read.

One file per task attempt: ``logs/<project>/<workflow>/<run_id>/<task>.<attempt>.log``, with
stdout and stderr in the order they were written. Past :data:`MAX_BYTES` the file is rotated
to ``.1``, ``.2`` (:data:`KEEP` files in all), so a chatty task never fills the disk.
Standard library only, and plain ``os.path`` (pathlib would cost every runner 2 MB).
"""

from __future__ import annotations

import os

MAX_BYTES = 10 * 1024 * 1024
KEEP = 3
READ_CHUNK = 1024 * 1024


def path_for(
    logs_dir: str | os.PathLike[str],
    project: str,
    workflow: str,
    run_id: int,
    task: str,
    attempt: int,
) -> str:
    return os.path.join(logs_dir, project, workflow, str(run_id), f"{task}.{attempt}.log")


class RotatingLog:
    """Append-only writer that rotates at ``max_bytes`` and keeps ``keep`` files.

    The file is made at the first write: creating a file costs this machine's file system
    about 0.35 ms, a third of starting a task, and a task that prints nothing needs none.
    """

    def __init__(self, path: str, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._fd = -1
        self._size = 0

    def write(self, data: bytes) -> None:
        if self._fd < 0:
            self._open()
        while data:
            room = self.max_bytes - self._size
            if room <= 0:
                self._rotate()
                continue
            written = os.write(self._fd, data[:room])
            self._size += written
            data = data[written:]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _open(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        os.close(self._fd)
        for number in range(self.keep - 1, 0, -1):
            older = f"{self.path}.{number}"
            newer = f"{self.path}.{number - 1}" if number > 1 else self.path
            if os.path.exists(newer):
                os.replace(newer, older)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._size = 0


def size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_tail(path: str | os.PathLike[str], lines: int | None) -> str:
    """The whole current file, or its last ``lines`` lines."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after an early return
    except FileNotFoundError:
        return ""
    with handle:
        if lines is None:
            return handle.read().decode(errors="replace")
        end = handle.seek(0, os.SEEK_END)
        position, data = end, b""
        while position > 0 and data.count(b"\n") <= lines:
            step = min(64 * 1024, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    kept = data.splitlines(keepends=True)[-lines:] if lines else []
    return b"".join(kept).decode(errors="replace")


def read_from(path: str | os.PathLike[str], offset: int, whole: bool = False) -> tuple[str, int]:
    """Text from byte ``offset`` up to the last whole line (everything when ``whole``: the
    writer has ended), and the offset after it, for ``logs -f``.

    A file that rotated since (now shorter than ``offset``) is read from its start.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return "", offset
    with handle:
        end = handle.seek(0, os.SEEK_END)
        if end < offset:
            offset = 0
        handle.seek(offset)
        data = handle.read(READ_CHUNK)
    cut = len(data) if whole else data.rfind(b"\n") + 1
    if cut == 0 and len(data) < READ_CHUNK:
        return "", offset  # a partial line: wait for the rest
    if cut == 0:
        cut = len(data)
    return data[:cut].decode(errors="replace"), offset + cut
