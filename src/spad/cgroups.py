"""A task's ``memory_max``: a memory cgroup of its own, from cgroup v2 or the v1 memory controller.

Which one is found from ``/proc/self/cgroup`` and ``/proc/self/mountinfo``: v2 when its
hierarchy offers the memory controller, else the v1 memory hierarchy. A task's cgroup is made
beside the cgroup spad runs in (``spad-task.<run>.<task>.<attempt>``), its limit written, and the
task started *inside* it: the runner steps into the cgroup for the spawn and back out, so the
task and everything it forks are counted from their first byte (no window where a fast child
could escape). The kernel kills the group's processes when they exceed the limit (OOM killer).

cgroup v2 allows processes only in leaves once a controller is enabled for children, so under
v2 the server first moves its own processes into a leaf, ``spad``, and enables the memory
controller for its cgroup's children (:func:`prepare`); that works where spad's cgroup is
delegated to it (systemd ``Delegate=yes``, as the shipped unit has) or spad runs as root.

Standard library only: the runner imports this for a task that asks for a limit.
"""

from __future__ import annotations

import contextlib
import os

from spad import faults

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from collections.abc import Iterator

#: The leaf that holds spad's own processes under cgroup v2.
V2_LEAF = "spad"
TASK_PREFIX = "spad-task."


class Unavailable(Exception):
    """No memory cgroup can be used here; the message says why and what to do."""


class Hierarchy:
    """Where task cgroups are made: ``base`` (v1: the memory controller's directory for our
    cgroup; v2: our cgroup's parent of the ``spad`` leaf) and where we return after a spawn."""

    def __init__(self, version: int, base: str, home: str) -> None:
        self.version = version
        self.base = base
        self.home = home  # the cgroup directory our own process lives in

    def create(self, name: str, limit: int) -> TaskCgroup:
        # The runner's pid keeps runs of several homes on one machine apart.
        path = os.path.join(self.base, f"{TASK_PREFIX}{os.getpid()}.{name}")
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        group = TaskCgroup(self.version, path)
        group.set_limit(limit)
        return group

    @contextlib.contextmanager
    def inside(self, group: TaskCgroup) -> Iterator[None]:
        """Our process in ``group`` for the duration (a process forked meanwhile stays there)."""
        _write(os.path.join(group.path, "cgroup.procs"), str(os.getpid()))
        try:
            yield
        finally:
            # A failure here must not turn a started task into a failed start; the runner would
            # only be counted in the task's memory, and a move back was allowed a moment ago.
            with contextlib.suppress(OSError):
                _write(os.path.join(self.home, "cgroup.procs"), str(os.getpid()))


class TaskCgroup:
    def __init__(self, version: int, path: str) -> None:
        self.version = version
        self.path = path

    def set_limit(self, limit: int) -> None:
        if self.version == 2:
            _write(os.path.join(self.path, "memory.max"), str(limit))
            with contextlib.suppress(OSError):  # swap would let the task go past the limit
                _write(os.path.join(self.path, "memory.swap.max"), "0")
            return
        _write(os.path.join(self.path, "memory.limit_in_bytes"), str(limit))
        with contextlib.suppress(OSError):  # memsw >= memory: written after it, if it exists
            _write(os.path.join(self.path, "memory.memsw.limit_in_bytes"), str(limit))

    def usage(self) -> int | None:
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        try:
            return int(_read(os.path.join(self.path, name)))
        except (OSError, ValueError):
            return None

    def oom_kills(self) -> int:
        """How many processes of the group the kernel killed for going past the limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = _read(os.path.join(self.path, name))
        except OSError:
            return 0
        return counter(text, "oom_kill")

    def remove(self) -> None:
        """Once its processes are gone (an empty cgroup is left otherwise: harmless)."""
        with contextlib.suppress(OSError):
            os.rmdir(self.path)


def counter(text: str, key: str) -> int:
    """``key N`` from a cgroup's flat-keyed file."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def locate(cgroup_text: str, mountinfo_text: str) -> tuple[int, str, str]:
    """Pure: from /proc/self/cgroup and /proc/self/mountinfo, ``(version, mount point, our
    cgroup's path)`` of the hierarchy with the memory controller, v1 before v2 when both name
    one (a v1 memory hierarchy takes the controller from v2)."""
    v1_path = v2_path = None
    for line in cgroup_text.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_path = path
    v1_mount = v2_mount = None
    for line in mountinfo_text.splitlines():
        fields, _, tail = line.partition(" - ")
        parts, extra = fields.split(), tail.split()
        if len(parts) < 5 or len(extra) < 3:
            continue
        root, point = parts[3], _unescape(parts[4])
        if extra[0] == "cgroup" and "memory" in extra[2].split(",") and v1_mount is None:
            v1_mount = (root, point)
        elif extra[0] == "cgroup2" and v2_mount is None:
            v2_mount = (root, point)
    if v1_path is not None and v1_mount is not None:
        return 1, v1_mount[1], _below(v1_path, v1_mount[0])
    if v2_path is not None and v2_mount is not None:
        return 2, v2_mount[1], _below(v2_path, v2_mount[0])
    raise Unavailable(
        "this machine offers no memory cgroup: neither the cgroup v1 memory controller nor"
        " cgroup v2 is mounted (memory_max needs one)"
    )


def _below(path: str, root: str) -> str:
    """Our cgroup's path relative to a mount of the hierarchy at ``root`` (a container sees
    its own cgroup as the root)."""
    if root != "/" and (path == root or path.startswith(root + "/")):
        path = path[len(root) :] or "/"
    return path


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def detect() -> Hierarchy:
    """The hierarchy to make task cgroups in, checked usable; else :class:`Unavailable`."""
    if faults.NO_CGROUP:
        raise Unavailable("memory cgroups are turned off (SPAD_TEST_NO_CGROUP)")
    try:
        version, mount, path = locate(_read("/proc/self/cgroup"), _read("/proc/self/mountinfo"))
    except OSError as exc:
        raise Unavailable(f"cannot read this process's cgroups: {exc.strerror}") from exc
    home = os.path.normpath(mount + path)
    if version == 1:
        return _usable(Hierarchy(1, home, home))
    return _usable(v2_hierarchy(home))


def v2_hierarchy(home: str) -> Hierarchy:
    """Tasks go beside the leaf ``spad`` (or, in the root cgroup, below it)."""
    base = os.path.dirname(home) if os.path.basename(home) == V2_LEAF else home
    try:
        enabled = "memory" in _read(os.path.join(base, "cgroup.subtree_control")).split()
    except OSError as exc:
        raise Unavailable(f"cannot read the cgroup v2 controls of {base}: {exc.strerror}") from exc
    if not enabled:
        raise Unavailable(
            f"cgroup v2: the memory controller is not enabled for the cgroups under {base} and"
            " spad could not enable it: run spad with the shipped systemd unit (Delegate=yes,"
            " DelegateSubgroup=spad) or as root in a cgroup of its own"
        )
    return Hierarchy(2, base, home)


def _usable(hierarchy: Hierarchy) -> Hierarchy:
    if not os.access(hierarchy.base, os.W_OK):
        raise Unavailable(
            f"spad may not make cgroups in {hierarchy.base} (permission denied): run spad as"
            " root, or give its user that cgroup (systemd: Delegate=yes, as in the shipped unit)"
        )
    return hierarchy


def prepare() -> str | None:
    """Server start, cgroup v2 only: spad's processes in the leaf ``spad`` (systemd puts them
    there with ``DelegateSubgroup=spad``; else spad moves them, but only in a systemd service,
    ``INVOCATION_ID``: started from a shell, its cgroup holds the session's processes, which are
    not spad's to move), and the memory controller enabled for the leaf's siblings.
    Returns why it could not, or None."""
    try:
        version, mount, path = locate(_read("/proc/self/cgroup"), _read("/proc/self/mountinfo"))
        home = os.path.normpath(mount + path)
        if version != 2:
            return None
        base = os.path.dirname(home) if os.path.basename(home) == V2_LEAF else home
        controls = os.path.join(base, "cgroup.subtree_control")
        if "memory" in _read(controls).split():
            return None
        if "memory" not in _read(os.path.join(base, "cgroup.controllers")).split():
            return f"cgroup v2 does not offer the memory controller to {base}"
        if base == home:
            if not os.environ.get("INVOCATION_ID"):
                return f"cgroup v2: {home} is not spad's own (start spad with the shipped unit)"
            _move_into_leaf(home)
        _write(controls, "+memory")
    except (OSError, Unavailable) as exc:
        return str(exc)
    return None


def _move_into_leaf(home: str) -> None:
    leaf = os.path.join(home, V2_LEAF)
    with contextlib.suppress(FileExistsError):
        os.mkdir(leaf)
    for pid in _read(os.path.join(home, "cgroup.procs")).split():
        with contextlib.suppress(ProcessLookupError):
            _write(os.path.join(leaf, "cgroup.procs"), pid)


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
