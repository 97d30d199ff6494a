"""The file areas a client may reach: ``bin`` (executables), ``data``, ``logs`` (read only).

A remote path is ``<area>/<relative path>``. ``..``, absolute paths and NUL are refused by
name; then every component is opened relative to the folder before it, starting at the
area's own descriptor, with ``O_NOFOLLOW``: a symbolic link on the way is refused where it is
met. Checking a path and then following it again would let a link swapped in between
(``renameat2(RENAME_EXCHANGE)``) take a write outside the area; a descriptor cannot be
swapped. Links are still *run* from ``bin/`` (how system tools are offered), never read,
written or listed through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from spad.errors import Forbidden, Invalid, NotFound, SpadError
from spad.home import BIN, DATA, LOGS, Home

WRITABLE = frozenset({BIN, DATA})
AREAS = (BIN, DATA, LOGS)
#: The largest file `spa_ctl file put` may copy in, unless `spad --max-file-size` says otherwise.
DEFAULT_MAX_FILE = 4 * 1024**3
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Place:
    """A checked location inside an area: its folders and its name, never a joined path."""

    __slots__ = ("area", "folders", "name", "root")

    def __init__(self, area: str, root: str, parts: list[str]) -> None:
        self.area = area
        self.root = root
        self.folders = parts[:-1]
        self.name = parts[-1] if parts else ""

    @property
    def remote(self) -> str:
        return "/".join([self.area, *self.folders, self.name]) if self.name else self.area


def locate(home: Home, remote: str) -> Place:
    """Split and check ``remote``; raise Invalid with the reason when it could escape."""
    if not isinstance(remote, str) or not remote.strip("/"):
        raise Invalid(f"give a path that starts with an area: {', '.join(AREAS)} (e.g. data/x.csv)")
    if "\x00" in remote:
        raise Invalid("a path cannot contain a NUL character")
    if remote.startswith("/"):
        raise Invalid(f"{remote!r}: absolute paths are refused; give <area>/<path>, e.g. data/x")
    parts = [p for p in remote.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise Invalid(f"{remote!r}: '..' and '.' are refused: a path stays inside its area")
    area, rest = parts[0], parts[1:]
    if area not in AREAS:
        raise Invalid(f"{area!r} is not an area: give one of {', '.join(AREAS)}")
    return Place(area, str(getattr(home, area)), rest)


def for_writing(home: Home, remote: str) -> Place:
    place = locate(home, remote)
    if place.area not in WRITABLE:
        raise Forbidden(f"{place.area}/ is read only: copy files into bin/ or data/")
    if not place.name:
        raise Invalid(f"give a file name inside {place.area}/, e.g. {place.area}/name")
    return place


@contextlib.contextmanager
def folder(place: Place, create: bool = False) -> Iterator[int]:
    """A descriptor of the folder that holds ``place.name``, reached component by component
    without following a link; missing folders are made when ``create``."""
    fd = os.open(place.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, part in enumerate(place.folders):
            inner = _step(fd, part, create, place, depth)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _step(fd: int, part: str, create: bool, place: Place, depth: int) -> int:
    """The descriptor of ``part`` inside ``fd``."""
    shown = "/".join([place.area, *place.folders[: depth + 1]])
    try:
        return _open_folder(fd, part, create)
    except FileNotFoundError:
        raise NotFound(f"{shown} does not exist") from None
    except OSError as exc:
        raise _refusal(fd, part, exc, shown) from None


def _open_folder(fd: int, part: str, create: bool) -> int:
    try:
        return os.open(part, _FOLDER, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o755, dir_fd=fd)
        return os.open(part, _FOLDER, dir_fd=fd)


def _refusal(fd: int, part: str, exc: OSError, shown: str) -> Exception:
    """What to say when ``part`` could not be opened as a folder."""
    info = entry_stat(fd, part)
    # O_NOFOLLOW meets a link as ELOOP, or as ENOTDIR with O_DIRECTORY; a folder seen now
    # was a link a moment ago (swapped back): only a file in the way is the client's slip.
    if exc.errno == errno.ELOOP or (
        exc.errno == errno.ENOTDIR and (info is None or not stat.S_ISREG(info.st_mode))
    ):
        return Forbidden(
            f"{shown} is a symbolic link, which could lead outside {shown.partition('/')[0]}/: "
            "refused (a path is never followed through a link)"
        )
    if exc.errno == errno.ENOTDIR:
        return Invalid(f"{shown} is a file, not a folder")
    return exc


def entry_stat(fd: int, name: str) -> os.stat_result | None:
    """``name`` in the folder ``fd``, the link itself when it is one; None when missing."""
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_for_reading(home: Home, remote: str) -> int:
    """A descriptor of a regular file inside the area (the caller closes it)."""
    place = locate(home, remote)
    if not place.name:
        raise Invalid(f"{place.remote} is a folder: list it with spa_ctl file ls {place.remote}")
    with folder(place) as parent:
        try:
            fd = os.open(
                place.name,
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,  # never wait on a FIFO
                dir_fd=parent,
            )
        except FileNotFoundError:
            raise NotFound(
                f"{place.remote} does not exist (spa_ctl file ls {place.area} lists it)"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Forbidden(
                    f"{place.remote} is a symbolic link, which could lead outside "
                    f"{place.area}/: refused (a file is never read through a link)"
                ) from None
            raise as_error(exc, place.remote) from None  # a name too long, as PUT says it
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return fd
    os.close(fd)
    if stat.S_ISDIR(mode):
        raise Invalid(f"{place.remote} is a folder: list it with spa_ctl file ls {place.remote}")
    raise Invalid(f"{place.remote} is not a regular file: only files can be copied")


def delete(home: Home, remote: str) -> Place:
    place = for_writing(home, remote)
    with folder(place) as parent:
        info = entry_stat(parent, place.name)
        if info is None:
            raise NotFound(f"{place.remote} does not exist")
        if stat.S_ISDIR(info.st_mode):
            raise Invalid(f"{place.remote} is a folder: only files are deleted")
        os.unlink(place.name, dir_fd=parent)
    return place


def listing(home: Home, remote: str) -> list[dict[str, object]]:
    """The entries of a folder (or one file), without following any link."""
    if not remote.strip("/"):
        entries = []
        for area in AREAS:
            root = str(getattr(home, area))
            entries.append(_entry(area, os.stat(root), False))  # a folder: never "executable"
        return entries
    place = locate(home, remote)
    if not place.name:  # the area itself
        with folder(place) as fd:
            return _children(fd, place.remote)
    with folder(place) as parent:
        info = entry_stat(parent, place.name)
        if info is None:
            raise NotFound(f"{place.remote} does not exist")
        if not stat.S_ISDIR(info.st_mode):
            return [_entry(place.remote, info, _runnable(parent, place.name, info))]
        try:
            fd = os.open(place.name, _FOLDER, dir_fd=parent)
        except OSError as exc:
            raise _refusal(parent, place.name, exc, place.remote) from None
    try:
        return _children(fd, place.remote)
    finally:
        os.close(fd)


def _children(fd: int, remote: str) -> list[dict[str, object]]:
    with os.scandir(fd) as found:
        children = sorted(found, key=lambda e: e.name)
        return [
            _entry(
                f"{remote}/{child.name}",
                info := child.stat(follow_symlinks=False),
                _runnable(fd, child.name, info),
            )
            for child in children
        ]


def _runnable(fd: int, name: str, info: os.stat_result) -> bool:
    """Executable by spad's user (a link in bin/ is runnable when its target is)."""
    if stat.S_ISDIR(info.st_mode):
        return False
    return os.access(name, os.X_OK, dir_fd=fd)


def _entry(remote: str, info: os.stat_result, runnable: bool) -> dict[str, object]:
    mode = info.st_mode
    kind = "link" if stat.S_ISLNK(mode) else "folder" if stat.S_ISDIR(mode) else "file"
    return {
        "path": remote,
        "type": kind,
        "size": info.st_size,
        "executable": kind != "folder" and runnable,
        "mtime": info.st_mtime,
    }


def as_error(exc: OSError, remote: str) -> SpadError:
    """An OS error as the client's error where it is one (a name too long, a folder in the
    way, no room), with the system's words."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Forbidden(f"{remote}: {reason}")
    if no_space(exc):
        return Invalid(f"{remote}: {reason}: free some space on the server, or send less")
    return Invalid(f"{remote}: {reason}")


def no_space(exc: Exception) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
