"""The tree says where things are: spa.db's SQL only in store/, the client in cli/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import spad

SRC = Path(spad.__file__).parent
#: Reads the tables of the user's own databases (alarm sources), never spa.db.
OUTSIDE_SOURCES = "alarms/sources.py"


def _runs_sql(path: Path) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("execute", "executemany", "executescript")
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_only_the_store_runs_sql() -> None:
    runners = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.parent.name != "store" and _runs_sql(path)
    }
    assert runners == {OUTSIDE_SOURCES}


def test_the_client_module_a_task_calls_loads_neither_click_nor_the_server() -> None:
    """``spad.cli`` is a folder whose ``__init__`` imports nothing: the JSON-RPC client alone
    stays standard library."""
    code = "import sys, spad.cli.client; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split())  # fmt: skip
    assert not {m for m in loaded if m == "click" or m.startswith(("spad.server", "click."))}


def test_the_home_layout_is_spelled_only_in_home_py() -> None:
    from spad import home

    names = {home.DB, home.READ_ONLY_TOKEN, home.CONFIG, home.LOCK, home.RUNNERS_LOG}
    names.add(home.ALARMS_LOG)
    spellers = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in names
    }
    assert spellers == {"home.py"}
