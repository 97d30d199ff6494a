"""The home folder's layout, spelled here and nowhere else. Light on purpose: every runner
imports it, so no pathlib at import (making a home on first start is :mod:`spad.provision`)."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_HOME = "/opt/spa"
#: The executables a task may name.
BIN = "bin"
#: Tasks' working directory, and the files users copy in and out.
DATA = "data"
#: Task output (``logs/<project>/<workflow>/<run>/<task>.<attempt>.log``), runners' and alarms'.
LOGS = "logs"
#: The state.
DB = "spa.db"
#: The API token.
TOKEN = "token"
#: The read-only token, once ``spad token --read-only`` made it.
READ_ONLY_TOKEN = "token-read-only"
#: The settings (alarm sources, retention, hooks, metrics, Slurm), when there are any.
CONFIG = "spad.toml"
#: Held (``flock``) by the one server of this home.
LOCK = "spad.lock"
#: What runners print to their own stdout and stderr (inside LOGS).
RUNNERS_LOG = "runners.log"
#: The alarms' journal, a JSON line per transition (inside LOGS).
ALARMS_LOG = "alarms.log"
#: The URL of the server that runs now, for tasks started by an earlier one.
URL = "url"
#: A shorter token (an empty file, a cut one) is no secret: spad refuses it.
MIN_TOKEN = 32


class Home:
    """Paths inside a home (a plain class: a dataclass would cost every runner an import)."""

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"Home({str(self.root)!r})"

    @property
    def bin(self) -> Path:
        return self.root / BIN

    @property
    def data(self) -> Path:
        return self.root / DATA

    @property
    def logs(self) -> Path:
        return self.root / LOGS

    @property
    def db(self) -> Path:
        return self.root / DB

    @property
    def token_file(self) -> Path:
        return self.root / TOKEN

    @property
    def url_file(self) -> Path:
        """The URL of the server that runs now (see :func:`write_url`)."""
        return self.root / URL

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
    from pathlib import Path  # not at import: the runner does without it

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
        with open(os.path.join(root, URL)) as handle:
            return handle.read().strip() or None
    except OSError:
        return None
