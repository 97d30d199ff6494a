"""The benchmark harness keeps working (a small N; the numbers are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_runner_memory_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "runner_memory.py"),
            "--workflows",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "PSS ratio" in result.stdout
    row = json.loads(out.read_text())["results"][0]
    assert row["workflows"] == 2 and row["runner_pss_kib"] > 0 and row["floor_pss_kib"] > 0
