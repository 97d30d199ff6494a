"""Defects of spa_ctl a probe found: control characters printed raw, and ordinary input (a
missing local folder, a bad --url, COLUMNS, --value nan, a file name that is not UTF-8) ending
in "unexpected error". spa_ctl's ``main()`` runs as the shell runs it, its output taken as a
terminal gets it: click strips ANSI codes from output that is not a terminal, which hid them."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from spad.cli import follow
from spad.cli.client import BadUrl, ServerError, find_url
from spad.cli.main import main
from spad.cli.tables import printable, width

#: A task's output that would paint the terminal red and set its title.
HOSTILE = "\x1b[31mred\x1b[0m\n\x1b]0;TITLE\x07tab\there\r\n"
SHOWN = "\\x1b[31mred\\x1b[0m\n\\x1b]0;TITLE\\x07tab\there\\r\n"
#: A name in data/ whose byte 0xff is not UTF-8, as spad lists it (os.fsdecode).
NOT_UTF8 = "data/n\udcffm"
CONTENT = b"hello"


class FakeClient:
    """Answers as spad would, from ``results`` (a value, a function of the params, or an
    error to raise); records every request."""

    def __init__(self, **results: Any) -> None:
        self.results = results
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def call(self, method: str, **params: Any) -> Any:
        self.requests.append((method, params))
        result = self.results[method]
        if isinstance(result, Exception):
            raise result
        return result(params) if callable(result) else result

    def get_file(self, remote: str, write: Callable[[bytes], object], progress: Any = None) -> str:
        self.requests.append(("get_file", {"remote": remote}))
        write(CONTENT)
        return hashlib.sha256(CONTENT).hexdigest()


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def spa_ctl(*args: str) -> Outcome:
    """``spa_ctl ARGS`` through ``main()``, its output not stripped of ANSI codes."""
    with CliRunner().isolation(color=True) as (out, err, _mixed):
        argv, sys.argv = sys.argv, ["spa_ctl", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        return Outcome(code, out.getvalue().decode(), err.getvalue().decode())


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeClient]:
    """spa_ctl's client replaced by a FakeClient answering ``results``."""
    for name in ("SPA_URL", "SPA_HOME", "SPA_TASK", "SPA_TOKEN", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)

    def make(**results: Any) -> FakeClient:
        fake = FakeClient(**results)
        monkeypatch.setattr("spad.cli.context.Client", lambda *_a, **_k: fake)
        return fake

    return make


def usage_error(outcome: Outcome, *words: str) -> str:
    """The one-line usage error (exit 2) that names ``words``, not an unexpected one."""
    assert outcome.code == 2, outcome
    assert outcome.err.startswith("spa_ctl: ") and "unexpected" not in outcome.err, outcome
    assert all(word in outcome.err for word in words), outcome
    return outcome.err


# 1. Control characters: a task's output and file names are shown escaped.


def logs_reply(params: dict[str, Any]) -> Any:
    """What spad's ``logs`` returns: the text, or with ``offset`` a page of it."""
    if "offset" not in params:
        return HOSTILE
    start = params["offset"]
    return {"text": HOSTILE[start:], "offset": len(HOSTILE), "ended": True}


def test_a_tasks_log_is_shown_escaped_its_lines_and_tabs_kept(serve: Callable[..., Any]) -> None:
    serve(logs=logs_reply)
    assert spa_ctl("logs", "-p", "P", "W", "-t", "T") == Outcome(0, SHOWN, "")
    assert spa_ctl("logs", "-p", "P", "W", "-t", "T", "-f") == Outcome(0, SHOWN, "")


def test_every_tasks_log_followed_is_shown_escaped(
    serve: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow, "INTERVAL", 0)
    state = {"project": "P", "workflow": "W", "run_id": 1, "status": "success0"}
    serve(status={**state, "tasks": [{"name": "T", "attempt": 1}]}, logs=logs_reply)
    outcome = spa_ctl("logs", "-p", "P", "W", "-f")
    assert outcome == Outcome(0, "".join(f"T | {line}\n" for line in SHOWN.splitlines()), "")


def test_a_carriage_return_cannot_overwrite_a_lines_task_prefix(serve: Callable[..., Any]) -> None:
    serve(logs="T | ok\rU | forged\nT | \n")
    assert spa_ctl("logs", "W").out == "T | ok\\rU | forged\nT | \n"


def test_file_names_are_listed_escaped(serve: Callable[..., Any]) -> None:
    names = ["data/a\x1b[31mb", NOT_UTF8]
    entries = [{"path": n, "type": "file", "size": 1, "executable": False} for n in names]
    serve(file_list={"entries": entries})
    outcome = spa_ctl("file", "ls", "data")
    assert outcome.code == 0 and "\x1b" not in outcome.out, outcome
    assert outcome.out.splitlines() == [
        "-            1  data/a\\x1b[31mb",
        "-            1  data/n\\xffm",  # the byte as bash's $'data/n\xffm' gives it back
    ]


def test_json_carries_a_name_that_is_not_utf8_as_spad_does(serve: Callable[..., Any]) -> None:
    serve(file_list={"entries": [{"path": NOT_UTF8, "type": "file"}]})
    outcome = spa_ctl("--json", "file", "ls", "data")
    assert outcome.code == 0 and '"data/n\\udcffm"' in outcome.out, outcome


def test_the_servers_message_is_shown_escaped(serve: Callable[..., Any]) -> None:
    serve(file_delete=ServerError(-32001, "data/\x1b]0;x\x07 does not exist"))
    outcome = spa_ctl("file", "rm", "data/\x1b]0;x\x07")
    assert outcome == Outcome(1, "", "spa_ctl: data/\\x1b]0;x\\x07 does not exist\n")


@pytest.mark.parametrize(("raw", "shown"), [("\udcff", "\\xff"), ("\udc80", "\\x80")])
def test_a_byte_that_is_not_utf8_is_shown_as_that_byte(raw: str, shown: str) -> None:
    assert printable(f"a{raw}b\ud800") == f"a{shown}b\\ud800"  # a lone high one: no byte


# 2. Ordinary input is a usage error that says what to fix.


def test_a_missing_local_folder_is_named(serve: Callable[..., Any], tmp_path: Path) -> None:
    fake = serve()
    target = tmp_path / "missing" / "y"
    err = usage_error(spa_ctl("file", "get", "data/x", str(target)), str(target))
    assert "No such file or directory" in err and err.count("\n") == 1
    assert fake.requests == []


def test_a_device_or_pipe_is_written_into_not_replaced(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    # /dev/null, as root, was replaced by a regular file; a FIFO shows it without harm.
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    try:
        serve()
        assert spa_ctl("file", "get", "data/x", str(pipe)).code == 0
        assert stat.S_ISFIFO(os.stat(pipe).st_mode)
        assert os.read(reader, 100) == CONTENT
    finally:
        os.close(reader)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://127.0.0.1:abc",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:7070/a b",
        "http://127.0.0.1:7070/\x01",
        "ftp://127.0.0.1:7070",
        "http://",
    ],
)
def test_a_url_that_cannot_be_used_is_a_usage_error_naming_it(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SPA_URL", "SPA_HOME", "SPA_TASK"):
        monkeypatch.delenv(name, raising=False)
    usage_error(spa_ctl("--url", url, "list"), "--url", "http://HOST:PORT")
    monkeypatch.setenv("SPA_URL", url)
    with pytest.raises(BadUrl, match="SPA_URL"):
        find_url(None)
    assert find_url("https://[::1]:7070/spad/") == "https://[::1]:7070/spad"  # a usable one


def test_an_unusable_columns_is_ignored(
    serve: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "²")  # a digit to str.isdigit(), not to int()
    assert width() is None  # not a terminal: every column
    serve(list={"projects": [{"name": "P", "current": True, "workflows": []}]})
    outcome = spa_ctl("list")
    assert outcome.code == 0 and outcome.out.startswith("PROJECT"), outcome


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_a_value_that_is_not_a_finite_number_is_a_usage_error(
    serve: Callable[..., Any], value: str
) -> None:
    fake = serve(signal_raise={"id": 1})
    raised = spa_ctl(
        "signal", "raise", "--source", "s", "--kind", "k", "--severity", "warning", "--value", value
    )
    usage_error(raised, "--value", "finite")
    usage_error(spa_ctl("stop", "W", "--wait", "--timeout", value), "--timeout", "finite")
    assert fake.requests == []


# 3. A listed name that is not UTF-8 cannot travel to spad: said so, before any request.


@pytest.mark.parametrize(
    "args", [("file", "get", NOT_UTF8), ("file", "rm", NOT_UTF8), ("file", "ls", NOT_UTF8)]
)
def test_a_name_that_is_not_utf8_is_refused_clearly(
    serve: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
) -> None:
    monkeypatch.chdir(tmp_path)
    fake = serve()
    usage_error(spa_ctl(*args), "data/n\\xffm", "not UTF-8", "rename it")
    assert fake.requests == [] and list(tmp_path.iterdir()) == []


def test_put_to_a_name_that_is_not_utf8_is_refused_clearly(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    local = Path(os.fsdecode(bytes(tmp_path) + b"/n\xffm"))
    local.write_bytes(CONTENT)
    fake = serve()
    usage_error(spa_ctl("file", "put", str(local), "data/"), "data/n\\xffm", "not UTF-8")
    assert fake.requests == []
