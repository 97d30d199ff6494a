"""An upgrade: spad starts on a home written by the previous version (0.1.0) and keeps it all."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from spad.store.sqlite import MIGRATIONS
from tests.conftest import Server

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "home-0.1.0"


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    """The 0.1.0 home (see its make.sh), restored from its text form."""
    home = tmp_path / "home"
    home.mkdir()
    conn = sqlite3.connect(home / "spa.db")
    conn.executescript((FIXTURE / "spa.sql").read_text())
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    shutil.copytree(FIXTURE / "logs", home / "logs")
    shutil.copy(FIXTURE / "spad.toml", home / "spad.toml")
    return home


@pytest.fixture
def upgraded(old_home: Path) -> Iterator[Server]:
    server = Server(old_home)
    try:
        yield server.start()
    finally:
        server.kill_everything()


def schema_version(home: Path) -> int:
    with sqlite3.connect(home / "spa.db") as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_the_fixture_is_a_home_of_the_previous_schema(old_home: Path) -> None:
    assert schema_version(old_home) == 3 < len(MIGRATIONS)


def test_an_upgrade_keeps_definitions_runs_alarms_and_the_config(upgraded: Server) -> None:
    home = upgraded.home
    assert schema_version(home) == len(MIGRATIONS)
    workflows = upgraded.call("dump", project="pr1")["context"]["project"]["workflows"]
    assert [w["name"] for w in workflows] == ["wf1", "wf2", "failing"]
    t23 = workflows[1]["tasks"][2]
    assert (t23["function"], t23["params"], t23["id"]) == ("error", ["0", "1"], 5)
    assert (t23["timeout"], t23["idle_timeout"], t23["memory_max"]) == (0.0, 0.0, None)
    assert upgraded.status("wf1")["status"] == "success0"
    assert upgraded.status("wf1")["run_id"] == 1
    assert upgraded.status("failing")["status"] == "error(3)"
    assert "sleeps 5s" in upgraded.call("logs", project="pr1", workflow="wf1", task="t12")
    (alarm,) = upgraded.call("alarms_list")["alarms"]
    assert (alarm["kind"], alarm["state"], alarm["value"]) == ("temperature", "acknowledged", 41.5)
    assert (home / "spad.toml").read_bytes() == (FIXTURE / "spad.toml").read_bytes()
    assert upgraded.call("list")["projects"][0]["current"] is True


def test_the_upgraded_home_runs_and_migrates_once(upgraded: Server) -> None:
    upgraded.call("run", project="pr1", workflow="failing")
    assert upgraded.wait_status("failing", "error(3)")["run_id"] == 3
    upgraded.stop()
    again = Server(upgraded.home)
    try:
        again.start()
        assert schema_version(upgraded.home) == len(MIGRATIONS)
        assert again.status("failing")["run_id"] == 3
        assert again.status("wf1")["run_id"] == 1
    finally:
        again.kill_everything()
