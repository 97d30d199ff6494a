"""The examples/ requests with curl, as the README shows them."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.conftest import REPO, Server

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(server: Server, name: str) -> Any:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-H",
            f"Authorization: Bearer {server.token}",
            "-d",
            f"@{REPO / 'examples' / f'command_{name}.json'}",
            server.url + "/rpc",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    reply = json.loads(result.stdout)
    assert "error" not in reply, reply
    return reply["result"]


def test_every_example_request_works_with_curl(server: Server) -> None:
    assert curl(server, "create")["project"] == "pr1"
    run_id = curl(server, "run")["run_id"]
    server.wait_task("wf1", "t12", "running")
    assert curl(server, "status")["run_id"] == run_id
    assert curl(server, "stop")["status"] == "stopping"
    server.wait_status("wf1", "stopped")
    assert curl(server, "dump")["context"]["project"]["name"] == "pr1"
    curl(server, "update")
    dumped = server.call("dump", workflow="wf1", task="t12")
    assert dumped["context"]["project"]["workflows"][0]["tasks"][0]["params"] == ["3"]
    curl(server, "delete")
    assert [t["name"] for t in server.status("wf2")["tasks"]] == ["t21", "t22"]
    assert curl(server, "list")["projects"][0]["name"] == "pr1"


def test_curl_without_the_token_gets_401(server: Server) -> None:
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-d",
            f"@{REPO / 'examples' / 'command_list.json'}",
            server.url + "/rpc",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == "401"
