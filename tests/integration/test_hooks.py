"""``[hooks] on_change``: bin/<hook> gets each workflow transition as JSON on stdin; the server
never waits for it, and one that runs over its timeout is killed."""

from __future__ import annotations

import json
import os
from typing import Any

from tests.conftest import Server, task, wait_for


def configured(make_server: Any, hook: str, body: str, timeout: float = 10) -> Server:
    server: Server = make_server()
    server.home.mkdir(parents=True)
    (server.home / "spad.toml").write_text(f'[hooks]\non_change = "{hook}"\ntimeout = {timeout}\n')
    server.start()
    server.script(hook, body)
    return server


def test_each_workflow_transition_reaches_the_hook(make_server: Any) -> None:
    server = configured(
        make_server, "notify", 'cat >> "$SPA_HOME/data/changes"; echo >> "$SPA_HOME/data/changes"\n'
    )
    server.define("wf1", task("t1", "simple", "0"))
    run_id = server.call("run", project="pr1", workflow="wf1")["run_id"]
    changes = server.home / "data" / "changes"

    def seen() -> list[dict[str, Any]]:
        if not changes.exists():
            return []
        return [json.loads(line) for line in changes.read_text().splitlines() if line]

    wait_for(lambda: [c["status"] for c in seen()] == ["running", "success0"])
    first, last = seen()
    assert (first["project"], first["workflow"], first["run_id"]) == ("pr1", "wf1", run_id)
    assert last["id"] > first["id"] and last["at"] >= first["at"]


def test_a_hook_that_hangs_is_killed_and_never_blocks_the_server(make_server: Any) -> None:
    server = configured(
        make_server,
        "slow",
        'cat > /dev/null; echo $$ >> "$SPA_HOME/data/pids"; exec sleep 600\n',
        timeout=4,
    )
    server.define("wf1", task("t1", "simple", "0"))
    server.call("run", project="pr1", workflow="wf1")
    pids = server.home / "data" / "pids"
    wait_for(lambda: pids.exists() and pids.read_text().strip())
    first = int(pids.read_text().split()[0])
    assert server.status("wf1")["workflow"] == "wf1"
    assert _state(first) != "Z"  # answered while the hook hangs, not after its kill
    # The second transition's hook runs once the first was killed at its timeout.
    wait_for(lambda: len(pids.read_text().split()) == 2, what="the second hook")
    assert not os.path.exists(f"/proc/{first}") or "Z" in _state(first)
    second = int(pids.read_text().split()[1])
    wait_for(lambda: not os.path.exists(f"/proc/{second}") or "Z" in _state(second))
    assert "ran over 4 s: killed" in (server.stderr_path.read_text() if server.stderr_path else "")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
