"""A folder swapped for a link while files go in and out: every component is opened relative
to the one before, without following links, so nothing lands (or is read, listed, deleted)
outside the area, however the swap is timed."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest

from spad.cli.client import ServerError
from tests.conftest import Server
from tests.integration.test_files import raw

RENAME_EXCHANGE = 2
AT_FDCWD = -100
#: Seconds of uploads against the swapping; the review's probe put 143 of 601 files
#: outside in less.
RACE_SECONDS = 8.0


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def can_exchange(tmp_path: Path) -> bool:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        exchange(tmp_path / "a", tmp_path / "b")
    except (OSError, AttributeError) as exc:
        return getattr(exc, "errno", None) not in (errno.ENOSYS, errno.EINVAL, None)
    return True


def test_a_folder_swapped_for_a_link_during_uploads_lands_nothing_outside(
    server: Server, tmp_path: Path
) -> None:
    if not can_exchange(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    data = server.home / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (data / "race").mkdir()
    (data / "swap").symlink_to(outside)
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            exchange(data / "race", data / "swap")
            swaps += 1

    thread = threading.Thread(target=swapper)
    thread.start()
    payload = b"x" * 100
    headers = {"X-Content-SHA256": hashlib.sha256(payload).hexdigest()}
    statuses: list[int] = []
    try:
        started = time.monotonic()
        while time.monotonic() - started < RACE_SECONDS:
            status, _ = raw(server, "PUT", f"/files/data/race/f{len(statuses)}", payload, headers)
            statuses.append(status)
    finally:
        stop.set()
        thread.join()
    assert swaps > 100 and len(statuses) > 50
    assert set(statuses) <= {200, 403}, set(statuses)
    assert statuses.count(200) > 0 and statuses.count(403) > 0  # both sides of the race met
    assert os.listdir(outside) == []  # no file, no temporary file
    for folder in (data / "race", data / "swap"):
        if folder.is_dir() and not folder.is_symlink():
            assert not [n for n in os.listdir(folder) if n.endswith(".spad-upload")]


def test_get_ls_and_rm_do_not_follow_a_link_on_the_way(server: Server, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("no")
    (server.home / "data" / "link").symlink_to(outside)
    (server.home / "data" / "inner").symlink_to(server.home / "data")  # even one inside
    (server.home / "data" / "file").write_text("x")
    client = server.client()
    for remote in ("data/link/secret", "data/inner/file"):
        with pytest.raises(ServerError, match="symbolic link"):
            client.get_file(remote, io.BytesIO().write)
        with pytest.raises(ServerError, match="symbolic link"):
            client.call("file_list", path=remote)
        with pytest.raises(ServerError, match="symbolic link"):
            client.call("file_delete", path=remote)
    (shown,) = client.call("file_list", path="data/link")["entries"]  # the link, not its target
    assert shown["type"] == "link"
    assert (outside / "secret").read_text() == "no" and (server.home / "data" / "file").exists()
    entries = client.call("file_list", path="data")["entries"]
    assert {e["path"]: e["type"] for e in entries}["data/link"] == "link"
    deleted = client.call("file_delete", path="data/link")  # the link itself may go
    assert deleted["deleted"] and (outside / "secret").exists()
