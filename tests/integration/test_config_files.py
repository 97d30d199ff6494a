"""A spad.toml that cannot be read as TOML text stops the start in one line, exit 2; its
[slurm] section read by a runner or a run is refused in words. A file that is not UTF-8, or a
folder in its place, were tracebacks (and a runner that died at each start, resumed for ever)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spad.executors import slurm_config
from tests.conftest import run_spad


@pytest.mark.parametrize("kind", ["not utf-8", "a folder"])
def test_a_spad_toml_that_cannot_be_read_stops_the_start_in_one_line(
    tmp_path: Path, kind: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if kind == "a folder":
        (home / "spad.toml").mkdir()
    else:
        (home / "spad.toml").write_bytes(b"\xff[alarms]\n")
    started = run_spad("--home", str(home), "--listen", "127.0.0.1:0")
    assert started.returncode == 2, started.stderr
    assert "spad.toml" in started.stderr and "Traceback" not in started.stderr
    assert len(started.stderr.strip().splitlines()) == 1


def test_a_slurm_section_that_is_not_utf8_is_refused_in_words(tmp_path: Path) -> None:
    (tmp_path / "spad.toml").write_bytes(b"\xff[slurm]\n")
    with pytest.raises(slurm_config.ConfigError, match="not UTF-8"):
        slurm_config.load(str(tmp_path))
