"""spad's version, as installed (asked at first use: importlib.metadata is not free)."""

from __future__ import annotations

import functools


@functools.cache
def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("spad")
    except metadata.PackageNotFoundError:
        return "unknown"
