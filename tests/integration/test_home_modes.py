"""What spad makes is never writable by group or others, whatever umask it was started with:
under umask 000 the home's folders were 0777 and any local user could replace bin/ programs,
which run as spad's user."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, Server, clean_env, task


def spad_under_umask_0(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", 'umask 000 && exec "$0" "$@"', str(VENV_BIN / "spad"), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )


def test_a_home_made_under_umask_0_is_writable_by_spad_s_user_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = spad_under_umask_0("token", "--read-only", "--home", str(home))  # opens spa.db too
    assert made.returncode == 0, made.stderr
    for path in (home, home / "bin", home / "data", home / "logs", home / "spa.db"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH), (path, oct(mode))


def test_the_read_only_token_made_and_rotated_is_in_the_audit_trail(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for rotate in ((), ("--rotate",)):
        made = spad_under_umask_0("token", "--read-only", *rotate, "--home", str(home))
        assert made.returncode == 0, made.stderr
    with sqlite3.connect(home / "spa.db") as conn:
        methods = [row[0] for row in conn.execute("SELECT method FROM audit ORDER BY id")]
    assert methods == ["token_read_only", "token_rotate_read_only"]


@pytest.mark.parametrize("size", ["-1", "\N{SUPERSCRIPT TWO}", "\N{FULLWIDTH DIGIT ONE}"])
def test_a_file_size_limit_that_is_no_whole_number_is_a_usage_error(
    tmp_path: Path, size: str
) -> None:
    made = spad_under_umask_0("--home", str(tmp_path / "h"), "--max-file-size", size)
    assert made.returncode == 2 and "--max-file-size" in made.stderr
    assert "is not a whole number of at least 1" in made.stderr  # '²' passed str.isdigit
    assert "Traceback" not in made.stderr


def test_a_logs_folder_removed_by_hand_is_made_again(server: Server) -> None:
    """Each runner died opening runners.log in it, and was resumed for ever, saying nothing."""
    server.define("w", task("t", "simple", "0"))
    shutil.rmtree(server.home / "logs")
    server.call("run", workflow="w")
    server.wait_status("w", "success0")
    assert (server.home / "logs" / "runners.log").exists()
    assert stat.S_IMODE((server.home / "logs").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("rotate", "method"), [((), "token_rotate"), (("--read-only",), "token_rotate_read_only")]
)
def test_a_refused_rotation_is_in_the_audit_trail(
    tmp_path: Path, rotate: tuple[str, ...], method: str
) -> None:
    """A `.new` file left by an interrupted rotation refuses the next one: said, and now
    recorded as every refused change is."""
    home = tmp_path / "home"
    made = spad_under_umask_0("token", "--read-only", "--home", str(home))
    assert made.returncode == 0, made.stderr
    name = "token-read-only" if rotate else "token"
    (home / f"{name}.new").write_text("left over\n")
    refused = spad_under_umask_0("token", *rotate, "--rotate", "--home", str(home))
    assert refused.returncode == 2 and ".new exists" in refused.stderr
    with sqlite3.connect(home / "spa.db") as conn:
        rows = conn.execute("SELECT method, outcome FROM audit ORDER BY id").fetchall()
    assert rows[-1][0] == method and rows[-1][1].startswith("error: ")
