"""Freed heap pages go back to the system, after a request that loaded modules only."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from spad import freed

#: Fills the heap with blocks (malloc'd: above pymalloc's 512 bytes), frees nine in ten (the
#: tenth kept: holes in the middle of the heap, which free() alone never returns), then prints
#: the process's resident heap before and after give_back().
PINNED_HEAP = """
from spad import freed

def heap_kib():
    size, inside = 0, False
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            inside = fields[-1] == "[heap]"
        elif inside and fields[0] == "Rss:":
            size += int(fields[1])
    return size

blocks = [bytes(4000) + bytes([i % 256]) for i in range(10_000)]
kept = blocks[::10]
del blocks
before = heap_kib()
freed.give_back()
print(before, heap_kib())
"""


def test_give_back_returns_the_free_pages_of_the_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PINNED_HEAP], capture_output=True, text=True, check=True
    )
    before, after = map(int, out.stdout.split())
    assert before - after > 20_000, (before, after)  # 36 MB freed in holes, most given back


def test_only_a_request_that_loaded_modules_gives_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[None] = []
    monkeypatch.setattr(freed, "give_back", lambda: calls.append(None))
    loading = freed.AfterLoading()
    loading.check()
    assert calls == []
    monkeypatch.setitem(sys.modules, "spad_test_loaded_late", types.ModuleType("late"))
    loading.check()
    loading.check()
    assert len(calls) == 1


#: Holes between live blocks, as a loaded fork server has; then the free chunks are taken and
#: one more block is allocated. Prints: free bytes before, bytes taken, free bytes after, and
#: whether the new block lies above every live one (cut from the heap's top, not from a hole).
HOLES_TAKEN = """
from spad import freed

blocks = [bytes(4000) + bytes([i % 256]) for i in range(2_000)]
kept = blocks[::10]
del blocks
before = freed.free_in_chunks()
taken = freed.take_free_chunks()
after = freed.free_in_chunks()
new = bytes(4000) + b"new"
print(before, taken, after, id(new) > max(map(id, kept)))
"""


def test_taking_the_free_chunks_leaves_new_allocations_to_the_top_of_the_heap() -> None:
    if freed.free_in_chunks() is None:
        pytest.skip("this C library does not report its heap (mallinfo2)")
    out = subprocess.run(
        [sys.executable, "-c", HOLES_TAKEN], capture_output=True, text=True, check=True
    )
    before, taken, after, on_top = out.stdout.split()
    assert int(before) > 4_000_000, out.stdout  # 1,800 freed blocks of 4 KB between live ones
    assert int(taken) == int(before) and int(after) == 0, out.stdout
    assert on_top == "True", out.stdout


def test_taking_the_free_chunks_ends_when_allocations_are_mapped_apart() -> None:
    """A lowered mmap threshold serves each request with a mapping of its own, which takes no
    free chunk: the fork server's start must still end, without mapping memory by the GiB."""
    if freed.free_in_chunks() is None:
        pytest.skip("this C library does not report its heap (mallinfo2)")
    program = (
        "from spad import freed;"
        " blocks = [bytes(4000) + bytes([i % 256]) for i in range(2_000)];"
        " kept = blocks[::10]; del blocks;"  # free chunks of 36 KB, above the threshold
        " freed.take_free_chunks();"
        # The peak of this process's own memory (ru_maxrss would count the parent's at spawn)
        " print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="16384", MALLOC_TOP_PAD_="0")
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, env=env,
        timeout=60,
    )  # fmt: skip
    assert int(out.stdout) < 100_000, out.stdout  # KiB: a fresh interpreter is about 10,000
