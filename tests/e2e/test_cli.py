"""The real spa_ctl against the real server: every command, output and exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, VENV_BIN, Server, clean_env


def spa_ctl(
    server: Server | None, *args: str, env: dict[str, str] | None = None, command: str = "spa_ctl"
) -> subprocess.CompletedProcess[str]:
    base = clean_env(**(env or {}))
    if server is not None:
        base.update(SPA_URL=server.url, SPA_HOME=str(server.home))
    return subprocess.run(
        [str(VENV_BIN / command), *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=60,
        check=False,
    )


def ok(server: Server, *args: str) -> str:
    result = spa_ctl(server, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(server: Server, *args: str) -> Any:
    return json.loads(ok(server, "--json", *args))


def refused(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("spa_ctl: ") and "Traceback" not in result.stderr
    return result.stderr


def test_the_seed_file_works_unchanged(server: Server) -> None:
    out = ok(server, "create", "-f", str(EXAMPLE))
    assert "created in project pr1" in out and "wf1: t11, t12" in out
    listing = ok(server, "list")
    assert "pr1 *" in listing and "wf2" in listing and "not run" in listing


def test_create_with_json_text_and_the_alias(server: Server) -> None:
    text = (
        '{"project": {"name": "p2", "workflows": [{"name": "w", "tasks": ['
        '{"name": "t", "function": "simple"}]}]}}'
    )
    result = spa_ctl(server, "create", "-j", text, command="spa_conn")
    assert result.returncode == 0, result.stderr
    assert as_json(server, "list")["projects"][0]["name"] == "p2"


def test_dump_output_edited_and_fed_back_to_update(server: Server, tmp_path: Path) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    dumped = as_json(server, "dump")
    assert dumped == json.loads(ok(server, "dump"))
    dumped["context"]["project"]["workflows"][0]["tasks"][1]["params"] = ["7"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(dumped))
    assert "replaced in project pr1" in ok(server, "update", "-f", str(edited))
    assert as_json(server, "dump", "-w", "wf1", "-t", "t12")["context"]["project"]["workflows"][0][
        "tasks"
    ][0]["params"] == ["7"]
    before = as_json(server, "dump")
    ok(server, "update", "-f", str(edited))
    assert as_json(server, "dump") == before


def test_status_table_and_json(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    table = ok(server, "status", "-w", "wf1")
    assert "pr1/wf1: not run" in table and "t11" in table and "parallel" in table
    state = as_json(server, "status", "-p", "pr1", "-w", "wf1", "-t", "t12")
    assert [t["name"] for t in state["tasks"]] == ["t12"]


def test_select_project_and_delete_short_form(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    ok(server, "create", "-j", '{"project": {"name": "other"}}')
    assert "current project: pr1" in ok(server, "select_project", "pr1")
    assert "deleted in project pr1" in ok(server, "delete", "-w", "wf2", "-t", "t21")
    assert [t["name"] for t in as_json(server, "status", "-w", "wf2")["tasks"]] == ["t22", "t23"]
    ok(server, "delete", "-p", "pr1", "-w", "wf2")
    assert [
        w["name"] for w in as_json(server, "list", "-p", "pr1")["projects"][0]["workflows"]
    ] == ["wf1"]
    tree = (
        '{"project": {"name": "pr1", "workflows": [{"name": "wf1", "tasks": [{"name": "t11"}]}]}}'
    )
    ok(server, "delete", "-j", tree)
    assert [t["name"] for t in as_json(server, "status", "-w", "wf1")["tasks"]] == ["t12"]


def test_exit_code_1_when_the_server_refuses(server: Server) -> None:
    ok(server, "create", "-f", str(EXAMPLE))
    message = refused(spa_ctl(server, "create", "-f", str(EXAMPLE)), 1)
    assert "already exists" in message and "update" in message
    assert "cannot be deleted" in refused(
        spa_ctl(server, "delete", "-j", '{"project": {"name": "pr1"}}'), 1
    )
    assert "does not exist" in refused(spa_ctl(server, "status", "-w", "nope"), 1)
    assert "unknown key" in refused(
        spa_ctl(server, "create", "-j", '{"project": {"name": "x", "y": 1}}'), 1
    )


@pytest.mark.parametrize(
    "args",
    [
        ("create",),
        ("create", "-j", "{not json"),
        ("create", "-f", "/nonexistent/file.json"),
        ("status", "-t", "t11"),
        ("logs", "-w", "w", "-a", "2"),
        ("run",),
        ("nonsense",),
        ("set_status", "-w", "w", "-t", "t", "-s", "done"),
        ("run", "-w", "w", "-t", "a", "--from", "b"),
        ("delete",),
    ],
)
def test_exit_code_2_on_usage_errors(server: Server, args: tuple[str, ...]) -> None:
    refused(spa_ctl(server, *args), 2)


def test_exit_code_3_when_no_server_answers(tmp_path: Path) -> None:
    result = spa_ctl(None, "list", env={"SPA_URL": "http://127.0.0.1:9", "SPA_TOKEN": "x"})
    assert "no spad server" in refused(result, 3)


def test_url_and_token_flags_win(server: Server) -> None:
    result = spa_ctl(
        None, "--url", server.url, "--token", server.token, "list", env={"SPA_HOME": "/nonexistent"}
    )
    assert result.returncode == 0, result.stderr
    result = spa_ctl(None, "--url", server.url, "--token", "wrong", "list")
    assert "unauthorized" in refused(result, 1)


def test_help_lists_every_command() -> None:
    result = spa_ctl(None, "--help")
    for command in (
        "select_project",
        "create",
        "delete",
        "update",
        "run",
        "stop",
        "status",
        "dump",
        "set_status",
        "list",
        "logs",
    ):
        assert command in result.stdout
