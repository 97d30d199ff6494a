"""Freed memory in the C heap: given back to the system, or taken before a fork.

Loading modules leaves the C heap holding what it was done with: the dataclasses of the
methods' parameters are compiled from source text when their module is imported, and the
text, the parse trees and the byte-code's drafts are freed into the heap, not returned. An
idle server would keep 0.7 MiB of such free pages for as long as it runs (measured: the
methods' first load, 0.8 MiB of heap, 0.16 MiB after a trim). glibc's ``malloc_trim`` returns
free pages anywhere in the heap (not only at its top). It is called after the start and after
a request that loaded modules (the methods at the first call, the definitions' model at the
first definition): a few times in a server's life, not on every request.

The fork server does the opposite before it forks runners (:func:`take_free_chunks`): the free
chunks left between its live ones are scattered over its whole heap, and a forked runner's
first allocations (SQLite's, mostly) would land in them, each one copying a page the runners
shared. Taken by the fork server, they leave a runner's allocations to the heap's top, on
pages of its own and side by side (bench/fork_pages.py).
"""

from __future__ import annotations

import ctypes
import sys

#: Loaded once, before any fork: a ``CDLL`` made in a forked runner would build a class there.
_LIBC = ctypes.CDLL(None)
# Not every C library has these (musl has neither): then there is nothing to do.
_MALLOC_TRIM = getattr(_LIBC, "malloc_trim", None)
_MALLINFO2 = getattr(_LIBC, "mallinfo2", None)  # glibc 2.33 and later


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


if _MALLINFO2 is not None:
    _MALLINFO2.restype = _MallInfo2
    _LIBC.malloc.restype = ctypes.c_void_p
    _LIBC.malloc.argtypes = [ctypes.c_size_t]

#: Requests above glibc's smallest mmap threshold (128 KiB) are mapped apart, not cut from
#: free chunks: the largest size asked while filling stays below it.
_LARGEST = 64 * 1024
#: glibc's per-thread cache keeps up to 7 freed chunks of each size up to 1,032 bytes, in
#: steps of 16; they count as in use, so they are emptied by size.
_TCACHE_LARGEST = 1032
_TCACHE_COUNT = 7
#: A bound on the allocations made to take the free chunks (a loaded fork server has about a
#: hundred): whatever the C library does, the fork server's start ends.
_MOST_TRIES = 20_000
_MOST_IDLE = 32


def give_back() -> None:
    """Return the heap's free pages to the system (where the C library can)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def free_in_chunks() -> int | None:
    """Bytes free in the heap outside its top (None where the C library does not say)."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return int(info.fordblks - info.keepcost)


def take_free_chunks() -> int:
    """Allocate, and never free, the heap's free chunks (and the per-thread cache's), so the
    next allocations come from the heap's top. Returns the bytes taken.

    Called once by the fork server before it forks: what it takes stays allocated in the fork
    server, untouched, so it costs no page of its own beyond the chunks' headers."""
    if _MALLINFO2 is None:
        return 0
    malloc = _LIBC.malloc
    before = free_in_chunks() or 0
    for size in range(16, _TCACHE_LARGEST + 1, 16):
        for _ in range(_TCACHE_COUNT):
            malloc(size)
    size, tries = _LARGEST, 0
    info = _MALLINFO2()
    while size >= 16 and tries < _MOST_TRIES:
        idle = 0  # allocations in a row that took no free chunk
        while tries < _MOST_TRIES and idle < _MOST_IDLE:
            tries += 1
            if info.fordblks - info.keepcost < size or not malloc(size):
                break  # nothing of this size left, or no memory
            after = _MALLINFO2()
            if after.keepcost != info.keepcost:  # cut from the top: none of this size is left
                info = after
                break
            # Not from a free chunk either: from the thread cache (refilled by what was freed
            # meanwhile), or mapped apart (a lowered mmap threshold). Some in a row end the size.
            idle = idle + 1 if after.fordblks == info.fordblks else 0
            info = after
        size //= 2
    return before - int(info.fordblks - info.keepcost)


class AfterLoading:
    """Gives the heap's free pages back after a request that loaded modules."""

    def __init__(self) -> None:
        self._loaded = len(sys.modules)

    def check(self) -> None:
        if len(sys.modules) != self._loaded:
            self._loaded = len(sys.modules)
            give_back()
