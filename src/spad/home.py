"""The home folder's layout. Light on purpose: every runner imports it (making a home on
first start is :mod:`spad.provision`)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "/opt/spa"


class Home:
    """Paths inside a home (a plain class: a dataclass would cost every runner an import)."""

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"Home({str(self.root)!r})"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def db(self) -> Path:
        return self.root / "spa.db"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def url_file(self) -> Path:
        """The URL of the server that runs now (see :func:`write_url`)."""
        return self.root / "url"

    def token(self) -> str:
        return self.token_file.read_text().strip()

    def executable(self, function: str) -> Path | None:
        """``bin/<function>`` when it is an executable file (or a link to one), else None."""
        path = self.bin / function
        if path.is_file() and os.access(path, os.X_OK):
            return path
        return None


def resolve(flag: str | None) -> Home:
    """``--home`` wins over ``SPA_HOME``, which wins over the default."""
    return Home(Path(flag or os.environ.get("SPA_HOME") or DEFAULT_HOME).absolute())


def write_url(home: Home, url: str) -> None:
    """Record where the server listens, atomically: a task started by an earlier server (on
    another address) reads it to reach the one that runs now."""
    partial = home.root / f".url.{os.getpid()}"
    partial.write_text(url + "\n")
    os.replace(partial, home.url_file)


def read_url(root: str) -> str | None:
    """The URL the server of the home at ``root`` wrote, or None."""
    try:
        with open(os.path.join(root, "url")) as handle:
            return handle.read().strip() or None
    except OSError:
        return None
