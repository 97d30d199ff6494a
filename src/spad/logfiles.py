"""Task log files: where they live, how they are capped and rotated, how they are read.

One file per task attempt: ``logs/<project>/<workflow>/<run_id>/<task>.<attempt>.log``, with
stdout and stderr in the order they were written. Past :data:`MAX_BYTES` the file is rotated
to ``.1``, ``.2`` (:data:`KEEP` files in all), so a chatty task never fills the disk.
Standard library only, and plain ``os.path`` (pathlib would cost every runner 2 MB).
"""

from __future__ import annotations

import json
import os

MAX_BYTES = 10 * 1024 * 1024
KEEP = 3
#: The most one read returns, counted as the reply carries it (JSON text, UTF-8): a log of
#: control characters or invalid bytes grows up to six times when escaped. More is paged
#: with ``offset``; a request for more than a reply holds cannot take the server's memory.
MAX_REPLY = 1024 * 1024
BACK_STEP = 64 * 1024
#: Room left in a reply for its envelope and a line saying what was left out.
ENVELOPE = 1024


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
        #: Bytes of output dropped since the disk refused them, and why (said when it takes
        #: writes again).
        self.lost = 0
        self._why = ""

    def write(self, data: bytes) -> None:
        """Append ``data``. A disk that refuses it (full, quota) drops it, not the task: the
        loss is counted and noted in the file once writing works again."""
        if self.lost and not self._note_loss():
            self.lost += len(data)
            return
        self.lost += len(data) - self._write(data)

    def _note_loss(self) -> bool:
        note = f"\nspad: {self.lost} bytes of output lost here ({self._why})\n".encode()
        if self._write(note) < len(note):
            return False
        self.lost = 0
        return True

    def _write(self, data: bytes) -> int:
        """How much of ``data`` went into the file (all of it, unless the disk refused)."""
        done = 0
        try:
            if self._fd < 0:
                self._open()
            while done < len(data):
                room = self.max_bytes - self._size
                if room <= 0:
                    self._rotate()
                    continue
                written = os.write(self._fd, data[done : done + room])
                self._size += written
                done += written
        except OSError as exc:
            self._why = exc.strerror or str(exc)
        return done

    def close(self) -> None:
        if self.lost:
            self._note_loss()  # the last chance; when the disk is still full, it stays unsaid
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


def open_for_appending(path: str | os.PathLike[str]) -> int:
    """A descriptor appending to ``path`` (made 0600), its folder made again (0700) if it was
    removed by hand; /dev/null should it still not open (a folder in its place): what writes
    there goes on without it (runners.log: each runner's start died on it)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        try:
            return os.open(path, flags, 0o600)
        except FileNotFoundError:  # the folder only: each runner's start opens it
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            return os.open(path, flags, 0o600)
    except OSError:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


def size(path: str | os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_tail(path: str | os.PathLike[str], lines: int | None, budget: int = MAX_REPLY) -> str:
    """The whole current file, or its last ``lines`` lines; within ``budget``: the end of the
    file, after a line that says what was left out and how to page through it."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after an early return
    except FileNotFoundError:
        return ""
    room = budget - ENVELOPE
    with handle:
        end = handle.seek(0, os.SEEK_END)
        position, raw = end, b""
        while position > 0 and len(raw) < room and (lines is None or raw.count(b"\n") <= lines):
            step = min(BACK_STEP, position, room - len(raw))
            position -= step
            handle.seek(position)
            raw = handle.read(step) + raw
    data = raw
    if lines is not None:
        data = b"".join(raw.splitlines(keepends=True)[-lines:] if lines else [])
    kept = _fit(data, room, from_end=True)
    cut_short = position > 0 and len(raw) >= room and (lines is None or raw.count(b"\n") <= lines)
    text = kept.decode(errors="replace")
    if len(kept) < len(data) or cut_short:
        text = (
            f"[spad: {end - len(kept)} earlier bytes of this {end}-byte log are left out "
            f"(a reply holds at most {budget} bytes): read them with offset=0, "
            "which pages through the whole log]\n" + text
        )
    return text


def read_from(
    path: str | os.PathLike[str], offset: int, whole: bool = False, budget: int = MAX_REPLY
) -> tuple[str, int]:
    """Text from byte ``offset`` up to the last whole line (everything when ``whole``: the
    writer has ended), and the offset after it, where the next read goes on (``logs -f``).
    At most ``budget``: the offset says where it stopped.

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
        data = handle.read(budget)
    fitted = _fit(data, budget - ENVELOPE, from_end=False)
    whole_fits = len(fitted) == len(data)
    cut = len(data) if whole and whole_fits else fitted.rfind(b"\n") + 1
    if cut == 0 and whole_fits and len(data) < budget:
        return "", offset  # a partial line: wait for the rest
    if cut == 0:
        cut = len(fitted)  # a line longer than a reply: cut inside it
    return data[:cut].decode(errors="replace"), offset + cut


def keep_end(text: str, budget: int = MAX_REPLY) -> str:
    """``text``, or its end within ``budget`` (as a reply carries it), after a line saying
    that the start was left out."""
    data = text.encode("utf-8", "surrogateescape")
    kept = _fit(data, budget - ENVELOPE, from_end=True)
    if len(kept) == len(data):
        return text
    return (
        f"[spad: the first {len(data) - len(kept)} bytes are left out (a reply holds at most "
        f"{budget} bytes): ask for one task, and page with offset=0]\n"
        + kept.decode(errors="replace")
    )


def _fit(data: bytes, budget: int, from_end: bool) -> bytes:
    """The longest start (or end) of ``data`` whose text fits ``budget`` bytes in a reply."""
    while data:
        size = len(json.dumps(data.decode(errors="replace"), ensure_ascii=False).encode())
        if size <= budget:
            return data
        keep = max(0, min(len(data) - 1, len(data) * budget // size - 16))
        data = data[len(data) - keep :] if from_end else data[:keep]
    return data
