"""The single-node Slurm cluster of ``scripts/slurm-cluster``, for the tests of the slurm
executor: up once per test session, down at its end (unless it was up before)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "slurm-cluster"
#: One cluster per host (its ports are fixed), so one folder for every test session.
FOLDER = Path("/tmp/spad-slurm-tests")
CANNOT_INSTALL = 3


class Cluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.conf = folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def jobs(self, prefix: str) -> list[tuple[str, str, str]]:
        """(id, comment, state) of every job, ended ones too, whose comment (spad's attempt
        tag) starts with ``prefix``."""
        done = self.command(
            "squeue", "--noheader", "--states=all", "-O", "JobID:|,Comment:|,State:|"
        )
        assert done.returncode == 0, done.stderr
        rows = [line.split("|")[:3] for line in done.stdout.splitlines() if "|" in line]
        return [
            (i.strip(), n.strip(), s.strip()) for i, n, s in rows if n.strip().startswith(prefix)
        ]


def up() -> tuple[Cluster | None, str, bool]:
    """(the cluster or None, why not, whether it was already up)."""
    was_up = (FOLDER / "slurmctld.pid").exists() and _alive(FOLDER / "slurmctld.pid")
    done = subprocess.run(
        [str(SCRIPT), "up", str(FOLDER)], capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode == CANNOT_INSTALL:
        return None, done.stderr.strip(), was_up
    if done.returncode != 0:
        raise AssertionError(f"scripts/slurm-cluster up failed: {done.stderr.strip()}")
    return Cluster(FOLDER), "", was_up


def down() -> None:
    subprocess.run([str(SCRIPT), "down", str(FOLDER)], check=False, timeout=120)


def _alive(pid_file: Path) -> bool:
    with contextlib.suppress(OSError, ValueError):
        pid, start = pid_file.read_text().split()
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19] == start
    return False


@contextlib.contextmanager
def session() -> Iterator[tuple[Cluster | None, str]]:
    cluster, why, was_up = up()
    try:
        yield cluster, why
    finally:
        if cluster is not None and not was_up:
            down()
