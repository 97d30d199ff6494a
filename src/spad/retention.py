"""What a home keeps: the newest runs of each workflow, and enough free disk for the next.

``spad.toml``:

```toml
[retention]
runs = 50               # a workflow keeps its newest 50 runs; older rows and log folders go
disk_min_free = "1G"    # below this much free space on the home's file system, run is refused
```
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_RUNS = 50
DEFAULT_DISK_MIN_FREE = "1G"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_LARGEST = 1024**6


class Policy:
    """The ``[retention]`` settings (a plain class: a home without spad.toml never loads the
    configuration's validation)."""

    __slots__ = ("disk_min_free", "runs")

    def __init__(self, runs: int = DEFAULT_RUNS, disk_min_free: int | None = None) -> None:
        self.runs = runs
        self.disk_min_free = (
            parse_size(DEFAULT_DISK_MIN_FREE) if disk_min_free is None else disk_min_free
        )


def parse_size(value: str | int) -> int:
    """Bytes from ``1073741824``, ``"512M"``, ``"1G"``, ``"1 GiB"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError('must be a size such as "1G" or a number of bytes')
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f'{value!r} is not a size: write it as "512M", "1G" or bytes')
    amount = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if amount > _LARGEST:  # float() makes a number of 400 digits infinite: no int for it
        raise ValueError(f"{value!r} is larger than any disk (at most 1 EiB)")
    return int(amount)


def human(size: int) -> str:
    """``1073741824`` as ``1.0 GiB``."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.1f} {unit}" if unit != "B" else f"{size} B"
        amount /= 1024
    return f"{amount:.1f} TiB"


def free_bytes(path: Path) -> int:
    # What shutil.disk_usage reads, without shutil (and the bz2 and lzma it loads) in the server.
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def remove_log_folders(logs: Path, project: str, workflow: str, run_ids: list[int]) -> None:
    """The log folders of deleted runs (``logs/<project>/<workflow>/<run_id>``)."""
    import shutil  # at the first deletion: an idle server does without it

    for run_id in run_ids:
        shutil.rmtree(logs / project / workflow / str(run_id), ignore_errors=True)
