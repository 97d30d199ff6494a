"""Making a home on first start: folders, the sample scripts, the token."""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

from spad.errors import HomeError
from spad.home import MIN_TOKEN, Home

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
        _keep_private(home)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise HomeError(
            f"cannot use {home.root} as spad's home ({reason}): "
            "give a writable folder with --home DIR or SPA_HOME"
        ) from None
    return home


def _install_samples(home: Home) -> None:
    # The samples are files beside this module (spad runs from a folder, never from a zip:
    # its spawn library is loaded from a file); importlib.resources would cost the server
    # 1 MiB of memory for as long as it runs.
    samples = Path(__file__).resolve().parent / "samples"
    for name in SAMPLES:
        target = home.bin / name
        if not target.exists() and not target.is_symlink():
            target.write_bytes((samples / name).read_bytes())
            target.chmod(0o755)
    echo = home.bin / "echo"
    if not echo.exists() and not echo.is_symlink():
        echo.symlink_to(_on_path("echo") or "/bin/echo")


def _on_path(name: str) -> str | None:
    """The executable ``name`` on PATH (shutil.which, without the shutil module and the bz2
    and lzma it loads into the server)."""
    for folder in os.get_exec_path():
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def _keep_private(home: Home) -> None:
    """The store and the logs hold task environments and output (secrets, often): spad's user
    only (a new store is made 0600 by :func:`make_store`)."""
    home.logs.chmod(0o700)
    for path in (home.db, home.root / "spa.db-wal", home.root / "spa.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)


def _make_token(home: Home) -> None:
    if home.token_file.exists():
        home.token_file.chmod(0o600)
        return
    write_token(home, new_token())


def new_token() -> str:
    # secrets.token_urlsafe(32) is this; the secrets module would load hashlib and OpenSSL's
    # libcrypto (1 MiB) into the server.
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")  # 43 chars


def check_token(home: Home) -> None:
    """HomeError when the token is too short to be a secret (an empty file lets anyone in)."""
    try:
        token = home.token()
    except (OSError, UnicodeDecodeError) as exc:
        raise HomeError(f"cannot read {home.token_file}: {exc}") from None
    if len(token) < MIN_TOKEN:
        raise HomeError(
            f"{home.token_file} holds {len(token)} characters, fewer than {MIN_TOKEN}: "
            "make a new token with 'spad token --rotate'"
        )


def write_token(home: Home, token: str, path: Path | None = None) -> None:
    """Write the token (or the one at ``path``: the read-only token) so that no crash or power
    cut leaves it empty or partial: a new file (never one that exists or is a link: ``.new``
    left over is refused, not reused), flushed to disk, renamed over the old one, and the
    folder flushed so the rename lasts."""
    target = path or home.token_file
    temporary = target.with_suffix(".new")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, 0o600)
    except FileExistsError:
        raise HomeError(
            f"{temporary} exists (left by an interrupted rotation, or put there): "
            "check it, remove it, and rotate again"
        ) from None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    folder = os.open(home.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def make_store(home: Home) -> None:
    """An empty ``spa.db`` readable by spad's user only, unless there is one: SQLite gives
    its -wal and -shm files the database's own mode when it makes them."""
    fd = os.open(home.db, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)
