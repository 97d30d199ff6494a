"""Which memory cgroup hierarchy spad uses, from /proc/self/cgroup and /proc/self/mountinfo."""

from __future__ import annotations

import pytest

from spad.cgroups import Unavailable, counter, locate, v2_hierarchy

V1_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_CGROUP = "9:name=systemd:/\n4:memory:/api/abc\n1:cpu:/\n0::/\n"
V2_MOUNTS = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V2_CGROUP = "0::/system.slice/spad.service\n"


def test_v1_memory_controller_wins_when_mounted() -> None:
    assert locate(V1_CGROUP, V1_MOUNTS) == (1, "/sys/fs/cgroup/memory", "/api/abc")


def test_v2_alone() -> None:
    assert locate(V2_CGROUP, V2_MOUNTS) == (2, "/sys/fs/cgroup", "/system.slice/spad.service")


def test_a_container_sees_its_cgroup_as_the_mount_root() -> None:
    mounts = "35 31 0:32 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    assert locate("0::/docker/abc/job\n", mounts) == (2, "/sys/fs/cgroup", "/job")


def test_a_mount_point_with_a_space_is_unescaped() -> None:
    mounts = "35 31 0:32 / /mnt/cg\\040x rw - cgroup cgroup rw,memory\n"
    assert locate("4:memory:/a\n", mounts)[1] == "/mnt/cg x"


def test_no_memory_hierarchy_says_so() -> None:
    mounts = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
    with pytest.raises(Unavailable, match="no memory cgroup"):
        locate("1:cpu:/\n", mounts)


def test_counters_of_v1_and_v2() -> None:
    assert counter("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "oom_kill") == 2
    assert counter("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n", "oom_kill") == 1
    assert counter("oom_kill_disable 0\n", "oom_kill") == 0


def test_v2_tasks_go_beside_the_spad_leaf_when_memory_is_enabled(tmp_path) -> None:
    (tmp_path / "spad").mkdir()
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    hierarchy = v2_hierarchy(str(tmp_path / "spad"))
    assert (hierarchy.version, hierarchy.base) == (2, str(tmp_path))
    # On a plain directory the files are only written: what the kernel would be told.
    group = hierarchy.create("7.t.1", 64 << 20)
    assert group.path.startswith(str(tmp_path / "spad-task."))
    assert (tmp_path / group.path / "memory.max").read_text() == str(64 << 20)
    assert (tmp_path / group.path / "memory.swap.max").read_text() == "0"


def test_v2_without_the_memory_controller_for_children_says_what_to_do(tmp_path) -> None:
    (tmp_path / "spad").mkdir()
    (tmp_path / "cgroup.subtree_control").write_text("cpu pids\n")
    with pytest.raises(Unavailable, match="Delegate=yes"):
        v2_hierarchy(str(tmp_path / "spad"))
