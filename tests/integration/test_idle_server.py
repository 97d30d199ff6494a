"""What a server that is only started and watched has loaded: deliberately little, because an
idle spad is meant to cost no more memory than an idle supervisord (bench/run.py, W6). Each
module below was left out on purpose; one that comes back is a regression of that measure.

Python's own import log (``PYTHONPROFILEIMPORTTIME``) names every module the real server
imports, lazily loaded ones included, in its log."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from spad.cli.client import ServerError
from tests.conftest import Server, task

#: Left out of an idle server, and why (the memory each costs it, measured with smaps).
NOT_WHEN_IDLE = {
    "_hashlib": "OpenSSL's libcrypto, 1 MiB: the token is compared and made without it",
    "shutil": "with bz2 and lzma, 0.3 MiB: argparse is given its width, samples copied by hand",
    "importlib.resources": "with zipfile and tempfile, 1 MiB: the samples are read as files",
    "tomllib": "only for a spad.toml",
    "concurrent.futures.thread": "a resolver thread for the server's life: resolved at start",
    "encodings.idna": "with unicodedata, 0.3 MiB: an ASCII host is resolved as bytes",
}
#: Loaded with the first definition, not by a server that is only watched.
UNTIL_A_DEFINITION = ("msgspec", "spad.definitions.model")


def imported(server: Server) -> set[str]:
    assert server.stderr_path is not None
    log = server.stderr_path.read_text()
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", log, re.MULTILINE))


@pytest.fixture
def logged(make_server: Callable[..., Server]) -> Server:
    return make_server(PYTHONPROFILEIMPORTTIME="1").start()


def test_a_watched_server_leaves_out_what_it_does_not_use(logged: Server) -> None:
    logged.call("list")
    with pytest.raises(ServerError):
        logged.call("status", workflow="none")
    modules = imported(logged)
    assert "spad.server.methods" in modules  # the log does show what was loaded at a call
    assert not {name: why for name, why in NOT_WHEN_IDLE.items() if name in modules}
    assert not [name for name in UNTIL_A_DEFINITION if name in modules]
    assert logged.process is not None
    process = Path(f"/proc/{logged.process.pid}")
    maps = (process / "maps").read_text()
    assert "libcrypto" not in maps
    assert "libssl" not in maps  # only with TLS (its import is refused, so the log names it)
    assert len(list((process / "task").iterdir())) == 1  # no thread beside the loop


def test_the_first_definition_loads_the_model(logged: Server) -> None:
    logged.define("w", task("a"))
    assert all(name in imported(logged) for name in UNTIL_A_DEFINITION)
