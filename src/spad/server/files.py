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
import hashlib
import os
import re
import tempfile

from spad import areas
from spad.errors import Invalid, SpadError
from spad.server.http import Request
from spad.server.replies import refusal, refuse
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
        size = await _receive(request, place.path, expected, executable, limit)
    except SpadError as exc:
        audit.record(service.conn, "file_put", request.peer, f"refused: {exc.message}", remote)
        await refuse(request, exc)
        await request.discard()
        return
    except _TooLarge:
        audit.record(service.conn, "file_put", request.peer, "refused: too large", remote)
        await refusal(
            request,
            413,
            -32004,
            f"the file is over the limit of {limit} bytes (spad --max-file-size changes it)",
            "invalid",
        )
        await request.discard()
        return
    audit.record(service.conn, "file_put", request.peer, "ok", f"{place.remote} {size} bytes")
    await request.respond_json(
        200, {"path": place.remote, "size": size, "sha256": expected, "executable": executable}
    )


async def _receive(
    request: Request, target: os.PathLike[str], expected: str, executable: bool, limit: int
) -> int:
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".spad-upload")
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
        os.replace(temporary, target)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return size


async def get(request: Request, service: Service, remote: str) -> None:
    try:
        place = areas.for_reading(service.home, remote)
    except SpadError as exc:
        await refuse(request, exc)
        return
    fd = os.open(place.path, os.O_RDONLY | os.O_NONBLOCK)  # never wait on what is not a file
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
        offset = 0
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
    digest, offset = hashlib.sha256(), 0
    while offset < size:
        chunk = os.pread(fd, min(CHUNK, size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()
