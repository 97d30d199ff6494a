"""The file areas a client may reach: ``bin`` (executables), ``data``, ``logs`` (read only).

A remote path is ``<area>/<relative path>``. Everything here keeps a path inside its area:
``..``, absolute paths, NUL and symlinks that lead outside are refused with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from spad.errors import Forbidden, Invalid, NotFound
from spad.home import BIN, DATA, LOGS, Home

WRITABLE = frozenset({BIN, DATA})
AREAS = (BIN, DATA, LOGS)
#: The largest file `spa_ctl file put` may copy in, unless `spad --max-file-size` says otherwise.
DEFAULT_MAX_FILE = 4 * 1024**3


class Place:
    """A checked location inside an area."""

    __slots__ = ("area", "path", "relative", "root")

    def __init__(self, area: str, root: Path, relative: str) -> None:
        self.area = area
        self.root = root
        self.relative = relative
        self.path = root / relative if relative else root

    @property
    def remote(self) -> str:
        return f"{self.area}/{self.relative}" if self.relative else self.area


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
    place = Place(area, getattr(home, area), "/".join(rest))
    _refuse_escape(place, place.path.parent if rest else place.path)
    return place


def for_writing(home: Home, remote: str) -> Place:
    place = locate(home, remote)
    if place.area not in WRITABLE:
        raise Forbidden(f"{place.area}/ is read only: copy files into bin/ or data/")
    if not place.relative:
        raise Invalid(f"give a file name inside {place.area}/, e.g. {place.area}/name")
    if place.path.is_dir() and not place.path.is_symlink():
        raise Invalid(f"{place.remote} is a folder: give a file name inside it")
    return place


def for_reading(home: Home, remote: str) -> Place:
    """A file to read: it must exist, and its real path must stay inside the area."""
    place = locate(home, remote)
    if not place.path.exists():
        raise NotFound(f"{place.remote} does not exist (spa_ctl file ls {place.area} lists it)")
    _refuse_escape(place, place.path)
    if place.path.is_dir():
        raise Invalid(f"{place.remote} is a folder: list it with spa_ctl file ls {place.remote}")
    if not place.path.is_file():  # a FIFO or a device would block or never end
        raise Invalid(f"{place.remote} is not a regular file: only files can be copied")
    return place


def _refuse_escape(place: Place, path: Path) -> None:
    root = os.path.realpath(place.root)
    real = os.path.realpath(path)
    if real != root and not real.startswith(root + os.sep):
        raise Forbidden(
            f"{place.remote} leads outside {place.area}/ (through a symbolic link): refused"
        )


def listing(home: Home, remote: str) -> list[dict[str, object]]:
    """The entries of a folder (or one file), without following links out of the area."""
    if not remote.strip("/"):
        return [_entry(area, getattr(home, area)) for area in AREAS]
    place = locate(home, remote)
    if not place.path.exists() and not place.path.is_symlink():
        raise NotFound(f"{place.remote} does not exist")
    if place.path.is_dir() and not place.path.is_symlink():
        _refuse_escape(place, place.path)
        return [
            _entry(f"{place.remote}/{child.name}", child) for child in sorted(place.path.iterdir())
        ]
    return [_entry(place.remote, place.path)]


def _entry(remote: str, path: Path) -> dict[str, object]:
    info = path.lstat()
    kind = "link" if path.is_symlink() else "folder" if path.is_dir() else "file"
    return {
        "path": remote,
        "type": kind,
        "size": info.st_size,
        "executable": kind != "folder" and os.access(path, os.X_OK),
        "mtime": info.st_mtime,
    }
