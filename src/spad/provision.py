"""Making a home on first start: folders, the sample scripts, the token."""

from __future__ import annotations

import os
import secrets
import shutil
from importlib import resources

from spad.errors import HomeError
from spad.home import Home

SAMPLES = ("simple", "error", "wait", "stubborn")


def prepare(home: Home) -> Home:
    """Make the home's folders, sample scripts and token if missing; raise HomeError if it
    cannot be made or written."""
    try:
        for folder in (home.root, home.bin, home.data, home.logs):
            folder.mkdir(parents=True, exist_ok=True)
        probe = home.root / ".spad-write-test"
        probe.write_text("")
        probe.unlink()
        _install_samples(home)
        _make_token(home)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise HomeError(
            f"cannot use {home.root} as spad's home ({reason}): "
            "give a writable folder with --home DIR or SPA_HOME"
        ) from None
    return home


def _install_samples(home: Home) -> None:
    samples = resources.files("spad") / "samples"
    for name in SAMPLES:
        target = home.bin / name
        if not target.exists() and not target.is_symlink():
            target.write_bytes((samples / name).read_bytes())
            target.chmod(0o755)
    echo = home.bin / "echo"
    if not echo.exists() and not echo.is_symlink():
        echo.symlink_to(shutil.which("echo") or "/bin/echo")


def _make_token(home: Home) -> None:
    if home.token_file.exists():
        home.token_file.chmod(0o600)
        return
    write_token(home, secrets.token_urlsafe(32))


def write_token(home: Home, token: str) -> None:
    """Write the token atomically, readable by its owner only."""
    temporary = home.token_file.with_suffix(".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(temporary, home.token_file)
