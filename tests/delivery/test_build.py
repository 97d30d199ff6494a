"""The package's build: the wheel carries the spawn library; an sdist builds without a compiler."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def build(*args: str, out: Path, env: dict[str, str] | None = None) -> list[Path]:
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return sorted(out.iterdir())


def test_the_wheel_holds_the_compiled_spawn_library(tmp_path: Path) -> None:
    (wheel,) = build("--wheel", str(REPO), out=tmp_path)
    assert "-py3-none-linux_" in wheel.name  # a C library, not tied to a Python ABI
    with zipfile.ZipFile(wheel) as archive:
        assert "spad/executors/libspawn.so" in archive.namelist()


@pytest.mark.parametrize("compiler", [True, False], ids=["with-cc", "without-cc"])
def test_an_sdist_builds_the_library_where_it_can(tmp_path: Path, compiler: bool) -> None:
    (sdist,) = build("--sdist", str(REPO), out=tmp_path / "sdist")
    env = None if compiler else {"PATH": "/usr/bin:/bin", "CC": str(tmp_path / "no-such-cc")}
    (wheel,) = build("--wheel", str(sdist), out=tmp_path / "wheel", env=env)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert ("spad/executors/libspawn.so" in names) is compiler
    assert "spad/runner/engine.py" in names
