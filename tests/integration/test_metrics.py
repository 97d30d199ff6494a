"""GET /metrics, read with prometheus_client's own parser (the server does not import it)."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import spad
from tests.conftest import Server, task, wait_for

FORBIDDEN_LABELS = {"run_id", "run", "attempt", "pid"}


def scrape(server: Server, token: str | None = None) -> tuple[str, dict[str, Any]]:
    request = urllib.request.Request(server.url + "/metrics")
    if token != "":
        request.add_header("Authorization", f"Bearer {token or server.token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return content_type, families


def samples(families: dict[str, Any], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    family = families[name.removesuffix("_total")]
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == name}


def test_the_contract_names_with_their_labels(server: Server) -> None:
    server.define("wf1", task("ok", "simple", "0"), task("bad", "error", "4", retries=1))
    server.define("wf2", task("t1", "simple", "60"))
    server.call("run", project="pr1", workflow="wf1")
    server.call("run", project="pr1", workflow="wf2")
    server.wait_status("wf1", "error(4)")
    server.wait_task("wf2", "t1", "running")
    server.call("signal_raise", project="pr1", source="ana", kind="drift", severity="critical")
    wait_for(lambda: server.call("alarms_list")["alarms"])

    content_type, families = scrape(server)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert samples(families, "spad_up") == {(): 1}
    assert samples(families, "spad_build_info") == {(("version", spad.__version__),): 1}
    assert samples(families, "spad_workflows") == {
        (("project", "pr1"), ("status", "error(4)")): 1,
        (("project", "pr1"), ("status", "running")): 1,
    }
    assert samples(families, "spad_workflow_running") == {
        (("project", "pr1"), ("workflow", "wf1")): 0,
        (("project", "pr1"), ("workflow", "wf2")): 1,
    }
    tasks = samples(families, "spad_tasks")
    assert tasks[(("project", "pr1"), ("status", "success0"), ("workflow", "wf1"))] == 1
    assert tasks[(("project", "pr1"), ("status", "error(4)"), ("workflow", "wf1"))] == 1
    assert tasks[(("project", "pr1"), ("status", "running"), ("workflow", "wf2"))] == 1
    restarts = samples(families, "spad_task_restarts_total")
    assert restarts[(("project", "pr1"), ("task", "bad"), ("workflow", "wf1"))] == 1
    assert restarts[(("project", "pr1"), ("task", "ok"), ("workflow", "wf1"))] == 0
    codes = samples(families, "spad_task_last_exit_code")
    assert codes[(("project", "pr1"), ("task", "bad"), ("workflow", "wf1"))] == 4
    assert codes[(("project", "pr1"), ("task", "ok"), ("workflow", "wf1"))] == 0
    memory = samples(families, "spad_task_memory_bytes")  # only what runs has a memory
    assert list(memory) == [(("project", "pr1"), ("task", "t1"), ("workflow", "wf2"))]
    assert memory[(("project", "pr1"), ("task", "t1"), ("workflow", "wf2"))] > 100_000
    assert samples(families, "spad_alarms") == {(("severity", "critical"), ("state", "open")): 1}
    assert samples(families, "spad_runners") == {(): 1}
    assert samples(families, "process_resident_memory_bytes")[()] > 1_000_000
    for family in families.values():
        for sample in family.samples:
            assert not FORBIDDEN_LABELS & set(sample.labels), sample
    server.call("stop", project="pr1", workflow="wf2", force=True)


def test_label_values_are_escaped(server: Server) -> None:
    server.call(
        "signal_raise", project="pr1", source="ana", kind="k", severity="info", message='a"b'
    )
    wait_for(lambda: server.call("alarms_list")["alarms"])
    server.define("wf1", task("t1", "simple", "0"))
    _, families = scrape(server)  # the parser would fail on a bad line
    assert samples(families, "spad_workflows") == {(("project", "pr1"), ("status", "not run")): 1}


def test_metrics_need_the_token_unless_public(make_server: Any) -> None:
    server = make_server().start()
    with pytest.raises(urllib.error.HTTPError) as refused:
        scrape(server, token="")
    refused.value.close()
    assert refused.value.code == 401
    server.stop()
    (server.home / "spad.toml").write_text("[metrics]\npublic = true\n")
    server.start()
    _, families = scrape(server, token="")
    assert samples(families, "spad_up") == {(): 1}
    assert server.post("{}", headers={"Authorization": "Bearer wrong"})[0] == 401


def test_a_scraper_keeps_its_connection(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for _ in range(100):  # one connection: GETs without a body keep it alive
            connection.request(
                "GET", "/metrics", headers={"Authorization": f"Bearer {server.token}"}
            )
            response = connection.getresponse()
            assert response.status == 200 and b"spad_up 1" in response.read()
    finally:
        connection.close()
