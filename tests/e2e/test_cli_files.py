"""spa_ctl file put|get|ls|rm and audit, as a user would use them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Server
from tests.e2e.test_cli import ok, refused, spa_ctl


def test_a_binary_copied_in_runs_and_its_log_comes_back(server: Server, tmp_path: Path) -> None:
    tool = tmp_path / "analyse"
    tool.write_text('#!/usr/bin/env bash\necho "analysed $1"\n')
    out = ok(server, "file", "put", str(tool), "bin/", "--exec")
    assert out.startswith("bin/analyse: ") and "(executable)" in out
    ok(
        server,
        "create",
        "-j",
        '{"project": {"name": "pr1", "workflows": [{"name": "w", "tasks":'
        ' [{"name": "t", "function": "analyse", "params": ["sample-7"]}]}]}}',
    )
    ok(server, "run", "-w", "w")
    state = server.wait_status("w", "success0")
    run_id = state["run_id"]
    listing = ok(server, "file", "ls", f"logs/pr1/w/{run_id}")
    assert f"logs/pr1/w/{run_id}/t.1.log" in listing
    local = tmp_path / "t.log"
    ok(server, "file", "get", f"logs/pr1/w/{run_id}/t.1.log", str(local))
    assert local.read_text() == "analysed sample-7\n"
    assert spa_ctl(server, "file", "get", f"logs/pr1/w/{run_id}/t.1.log", "-").stdout == (
        "analysed sample-7\n"
    )


def test_every_escape_is_refused_with_its_reason(server: Server, tmp_path: Path) -> None:
    local = tmp_path / "f"
    local.write_text("x")
    (server.home / "data" / "link").symlink_to("/etc")
    cases = {
        ("file", "put", str(local), "data/../token"): "'..'",
        ("file", "put", str(local), "/etc/passwd"): "absolute",
        ("file", "put", str(local), "logs/x"): "read only",
        ("file", "put", str(local), "home/x"): "not an area",
        ("file", "put", str(local), "data/link/x"): "outside",
        ("file", "get", "data/link/passwd", str(tmp_path / "p")): "outside",
        ("file", "get", "data/../spa.db", str(tmp_path / "d")): "'..'",
        ("file", "rm", "logs/runners.log"): "read only",
        ("file", "ls", "data/../.."): "'..'",
    }
    for args, reason in cases.items():
        assert reason in refused(spa_ctl(server, *args), 1), args
    assert not (tmp_path / "p").exists() and not (tmp_path / "d").exists()


def test_ls_rm_and_audit(server: Server, tmp_path: Path) -> None:
    local = tmp_path / "input.csv"
    local.write_text("a,b\n1,2\n")
    ok(server, "file", "put", str(local), "data/in/input.csv")
    assert "data/in/input.csv" in ok(server, "file", "ls", "data/in")
    assert "deleted data/in/input.csv" in ok(server, "file", "rm", "data/in/input.csv")
    assert ok(server, "file", "ls", "data/in") == ""
    trail = ok(server, "audit")
    assert "file_put" in trail and "file_delete" in trail and "127.0.0.1" in trail
    entries = json.loads(ok(server, "--json", "audit", "-n", "1"))["entries"]
    assert [e["method"] for e in entries] == ["file_delete"]
