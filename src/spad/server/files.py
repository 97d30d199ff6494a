"""Streaming file copies: ``PUT`` and ``GET /files/<area>/<path>``.

A file is never held in memory: it moves in 1 MiB chunks. An upload goes to a temporary file
beside its target, is checked against the ``X-Content-SHA256`` the client sent, and replaces
the target by ``rename`` — atomic, and a task running the old binary keeps its inode. A download
sends ``X-Content-SHA256`` of exactly the bytes it sends (a growing log is cut at its size when
the request came).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat

from spad import areas
from spad.errors import Invalid, SpadError
from spad.server.http import Request
from spad.server.replies import refuse
from spad.server.service import Service
from spad.store import audit

CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _TooLarge(Exception):
    pass


async def put(request: Request, service: Service, remote: str, limit: int) -> None:
    try:
        place = areas.for_writing(service.home, remote)
        expected = request.headers.get("x-content-sha256", "").lower()
        if not _SHA256.fullmatch(expected):
            raise Invalid("send the file's sha256 in the X-Content-SHA256 header (64 hex digits)")
        if (request.content_length or 0) > limit:
            raise _TooLarge
        executable = request.headers.get("x-executable", "").lower() in ("1", "true", "yes")
        with areas.folder(place, create=True) as parent:
            size = await _receive(request, parent, place, expected, executable, limit)
    except (SpadError, OSError) as exc:
        error = exc if isinstance(exc, SpadError) else areas.as_error(exc, remote)
        audit.record(service.conn, "file_put", request.peer, f"refused: {error.message}", remote)
        await refuse(request, error, 507 if areas.no_space(exc) else None)
        await request.discard()
        return
    except _TooLarge:
        audit.record(service.conn, "file_put", request.peer, "refused: too large", remote)
        await refuse(
            request,
            Invalid(
                f"the file is over the limit of {limit} bytes (spad --max-file-size changes it)"
            ),
            413,
        )
        await request.discard()
        return
    audit.record(service.conn, "file_put", request.peer, "ok", f"{place.remote} {size} bytes")
    await request.respond_json(
        200, {"path": place.remote, "size": size, "sha256": expected, "executable": executable}
    )


async def _receive(
    request: Request, parent: int, place: areas.Place, expected: str, executable: bool, limit: int
) -> int:
    """Into a new file beside the target, in the folder ``parent`` holds open (a link swapped
    in on the path cannot move it), then renamed over the target."""
    existing = areas.entry_stat(parent, place.name)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise Invalid(f"{place.remote} is a folder: give a file name inside it")
    import hashlib  # at the first copy: hashlib and secrets load OpenSSL's libcrypto (1 MiB)
    import secrets

    temporary = f".{secrets.token_hex(8)}.spad-upload"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600, dir_fd=parent)
    try:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.chunks():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        if digest.hexdigest() != expected:
            raise Invalid(
                f"the file arrived with sha256 {digest.hexdigest()}, not {expected}: "
                "nothing was written; send it again"
            )
        os.fchmod(fd, 0o755 if executable else 0o644)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(temporary, place.name, src_dir_fd=parent, dst_dir_fd=parent)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=parent)
    return size


async def get(request: Request, service: Service, remote: str) -> None:
    try:
        fd = areas.open_for_reading(service.home, remote)
    except SpadError as exc:
        await refuse(request, exc)
        return
    try:
        size = os.fstat(fd).st_size
        digest = await asyncio.to_thread(_sha256_of, fd, size)
        await request.start_stream(
            200,
            {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
                "X-Content-SHA256": digest,
            },
        )
        offset = size if request.head else 0  # a HEAD: the GET's headers, checksum included
        while offset < size:
            chunk = os.pread(fd, min(CHUNK, size - offset), offset)
            if not chunk:
                break
            await request.write(chunk)
            offset += len(chunk)
        await request.end_stream()
    finally:
        os.close(fd)


def _sha256_of(fd: int, size: int) -> str:
    import hashlib  # see _receive

    digest, offset = hashlib.sha256(), 0
    while offset < size:
        chunk = os.pread(fd, min(CHUNK, size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
