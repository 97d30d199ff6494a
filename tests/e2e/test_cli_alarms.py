"""spa_ctl signal raise, alarms, alarm ack|clear."""

from __future__ import annotations

import json

from tests.conftest import Server, wait_for
from tests.e2e.test_cli import ok, refused, spa_ctl


def test_raise_list_ack_clear(server: Server) -> None:
    assert "signal 1 raised" in ok(
        server,
        "signal",
        "raise",
        "--source",
        "ana",
        "--kind",
        "drift",
        "--severity",
        "critical",
        "--message",
        "3 sigma",
        "--value",
        "3.5",
    )
    alarm = wait_for(lambda: json.loads(ok(server, "--json", "alarms"))["alarms"])[0]
    assert (alarm["severity"], alarm["state"], alarm["value"]) == ("critical", "open", 3.5)
    table = ok(server, "alarms", "--open")
    assert "drift" in table and "3 sigma" in table and "open" in table
    assert "acknowledged" in ok(server, "alarm", "ack", str(alarm["id"]))
    assert "cannot be acknowledged" in refused(spa_ctl(server, "alarm", "ack", str(alarm["id"])), 1)
    assert "cleared" in ok(server, "alarm", "clear", str(alarm["id"]))
    assert "drift" not in ok(server, "alarms", "--open")
    assert "drift" in ok(server, "alarms")
    refused(
        spa_ctl(server, "signal", "raise", "--source", "a", "--kind", "b", "--severity", "bad"), 2
    )
