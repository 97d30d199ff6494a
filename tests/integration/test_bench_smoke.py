"""The benchmark harnesses keep working (small sizes; the numbers are not asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(autouse=True)
def scratch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The benches' temporary folder: each must leave it as it found it (a bench that left a
    folder in /tmp at each run of the suite filled it). A short path, not under tmp_path: a
    unix socket's path (supervisord's) holds 107 bytes at most."""
    folder = Path(tempfile.mkdtemp(prefix="spad-b-"))
    monkeypatch.setenv("TMPDIR", str(folder))
    try:
        yield folder
        assert sorted(path.name for path in folder.iterdir()) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=600, check=False, cwd=REPO
    )


def test_runner_memory_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    result = run("bench/runner_memory.py", "--workflows", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "PSS ratio" in result.stdout
    row = json.loads(out.read_text())["results"][0]
    assert row["workflows"] == 2 and row["runner_pss_kib"] > 0 and row["floor_pss_kib"] > 0


def test_the_runner_pages_bench_runs() -> None:
    result = run("bench/runner_pages.py", "--workflows", "2")
    assert result.returncode == 0, result.stderr
    totals = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    assert all(float(kib) > 0 for kib in totals.split()[1:])  # three columns, measured


def test_the_side_by_side_bench_runs_every_workload(tmp_path: Path) -> None:
    # Processes of someone else on the machine that look like the bench's own tasks (deaf to
    # SIGTERM, as other benches on a shared machine may send it): the bench looks at its own
    # processes only, counts none of these, and leaves them alone.
    others = [
        subprocess.Popen(["bash", "-c", f"trap '' TERM; exec sleep {seconds}"])
        for seconds in ("3000", "10000")
    ]
    out = tmp_path / "bench.json"
    try:
        result = run("bench/run.py", "--quick", "--json", str(out))
        assert [other.poll() for other in others] == [None, None]
    finally:
        for other in others:
            other.kill()
            other.wait()
    assert result.returncode == 0, result.stderr
    table = json.loads(out.read_text())["results"]
    for workload in ("W1", "W2", "W3", "W4", "W5", "W6", "W7"):
        assert any(metric.startswith(workload) for metric in table), workload
    assert table["W3 children left behind"]["spad"]["median"] == 0
    chain = next(v for k, v in table.items() if k.startswith("W1 marginal"))
    # A measurement for each (a marginal cost is a difference of two timings: on a loaded
    # machine one quick run may make it negative, so its sign is not asserted).
    assert all(isinstance(chain[side]["median"], float) for side in ("spad", "floor"))
    assert "spad/floor" in result.stdout and "supervisord" in result.stdout


def test_the_live_view_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "live.json"
    result = run("bench/live.py", "--quick", "--json", str(out))
    assert result.returncode == 0, result.stderr
    numbers = json.loads(out.read_text())["results"]
    assert numbers["latency"]["transitions"] > 0 and numbers["latency"]["stream_p99_ms"] > 0
    assert numbers["scrape"]["scrape_ms"] > 0 and numbers["memory"]["spad_dashboards"] > 0
    assert "stream/poll" in result.stdout


@pytest.mark.timeout(600)  # the first test to use the cluster may wait for apt-get
def test_the_slurm_bench_runs(tmp_path: Path, slurm_cluster: object) -> None:
    out = tmp_path / "slurm.json"
    result = run("bench/slurm.py", "--jobs", "3", "--rounds", "1", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "spad/bare" in result.stdout
    table = json.loads(out.read_text())["results"]
    assert table["start"]["spad"][0] > 0 and table["stop"]["bare"][0] > 0
