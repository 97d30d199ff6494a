"""Access: token rotation, TLS, listening beyond loopback, the audit trail."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from spad.cli.client import Client, ServerError
from tests.conftest import VENV_BIN, Server, clean_env, run_spad, seed, task


def test_a_rotated_token_replaces_the_old_one_at_once(server: Server) -> None:
    old = server.token
    assert server.call("list") == {"projects": []}
    result = run_spad("token", "--rotate", "--home", str(server.home))
    assert result.returncode == 0, result.stderr
    new = result.stdout.strip()
    assert new != old and new == server.token
    with pytest.raises(ServerError, match="unauthorized"):
        Client(server.url, old).call("list")
    assert Client(server.url, new).call("list") == {"projects": []}
    assert run_spad("token", "--home", str(server.home)).stdout.strip() == new


def test_tls(make_server: Callable[..., Server], tmp_path: Path) -> None:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = (tmp_path / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    authority.cert_pem.write_to_path(str(ca_file))
    server = make_server().start("--tls-cert", str(cert_file), "--tls-key", str(key_file))
    assert server.url.startswith("https://")
    client = Client(server.url, server.token, cacert=str(ca_file))
    client.call("create", **seed())
    assert client.call("list")["projects"][0]["name"] == "pr1"
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        Client(server.url, server.token).call("list")


def test_a_task_sets_its_status_over_tls(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        b"".join(p.bytes() for p in cert.cert_chain_pems) + authority.cert_pem.bytes()
    )
    key = tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key))
    server = make_server().start("--tls-cert", str(chain), "--tls-key", str(key))
    client = Client(server.url, server.token, cacert=str(chain))
    client.call(
        "create",
        project={"name": "pr1", "workflows": [{"name": "w", "tasks": [task("t", "wait", "0.2")]}]},
    )
    client.call("run", workflow="w")

    def ended() -> str | None:
        state = client.call("status", workflow="w")["status"]
        return state if state not in ("running",) else None

    from tests.conftest import wait_for

    assert wait_for(ended) == "success0", client.call("logs", workflow="w", task="t")


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0"])
def test_listening_beyond_loopback_needs_a_flag(tmp_path: Path, address: str) -> None:
    result = run_spad("--home", str(tmp_path / "h"), "--listen", address)
    assert result.returncode == 2 and "--allow-remote" in result.stderr
    assert result.stderr.count("\n") == 1


def test_allow_remote_warns(tmp_path: Path) -> None:
    with subprocess.Popen(
        [
            str(VENV_BIN / "spad"),
            "--home",
            str(tmp_path / "h"),
            "--listen",
            "0.0.0.0:0",
            "--allow-remote",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert "warning" in first and "token" in first and "TLS" in first
        finally:
            process.kill()


def test_every_mutating_call_is_audited(server: Server) -> None:
    server.call("create", **seed())
    server.call("status", workflow="wf1")  # a read: not recorded
    with pytest.raises(ServerError):
        server.call("delete", project={"name": "pr1"})
    server.define("w", task("t", "simple"))
    server.call("run", workflow="w")
    entries = server.call("audit")["entries"]
    methods = [(e["method"], e["outcome"].split(":")[0]) for e in entries]
    assert methods == [
        ("create", "ok"),
        ("delete", "error -32003"),
        ("create", "ok"),
        ("run", "ok"),
    ]
    assert {e["client"] for e in entries} == {"127.0.0.1"}
    assert all(e["at"].endswith("Z") for e in entries)
    assert '"pr1"' in entries[0]["detail"]


def test_each_call_of_a_batch_is_audited_with_its_own_outcome(server: Server) -> None:
    """A batch's trail is written together before its reply (``audit.record_all``), a row a
    call, in the calls' order."""
    server.define("a", task("t", "simple", "60"))
    server.define("b", task("t", "simple", "60"))
    calls = [{"workflow": "a"}, {"workflow": "b"}, {"workflow": "nope"}]
    replies = server.client().batch("run", calls)
    assert ["result" in r for r in replies] == [True, True, False]
    entries = server.call("audit", limit=3)["entries"]
    assert [(e["detail"], e["outcome"].split(":")[0]) for e in entries] == [
        ('{"workflow": "a"}', "ok"),
        ('{"workflow": "b"}', "ok"),
        ('{"workflow": "nope"}', "error -32001"),
    ]
    for workflow in ("a", "b"):
        server.call("stop", workflow=workflow)
        server.wait_status(workflow, "stopped")
