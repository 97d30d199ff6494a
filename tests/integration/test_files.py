"""File transfer: streaming, sha256, atomic replace, areas and every escape attempt."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from spad.cli.client import ServerError
from tests.conftest import Server, task, wait_for


def raw(
    server: Server, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """A request whose path is sent exactly as written (no client-side normalisation)."""
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request(
            method,
            path,
            body=body,
            headers={"Authorization": f"Bearer {server.token}", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_put_then_get_round_trip(server: Server, tmp_path: Path) -> None:
    local = tmp_path / "in.csv"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    reply = server.client().put_file(local, "data/sub/in.csv")
    assert reply == {
        "path": "data/sub/in.csv",
        "size": local.stat().st_size,
        "sha256": hashlib.sha256(local.read_bytes()).hexdigest(),
        "executable": False,
    }
    assert (server.home / "data" / "sub" / "in.csv").read_bytes() == local.read_bytes()
    sink = io.BytesIO()
    digest = server.client().get_file("data/sub/in.csv", sink.write)
    assert sink.getvalue() == local.read_bytes()
    assert digest == reply["sha256"]


def test_a_wrong_or_missing_sha256_writes_nothing(server: Server) -> None:
    status, body = raw(server, "PUT", "/files/data/x", b"hello", {"X-Content-SHA256": "0" * 64})
    assert status == 400 and b"sha256" in body
    status, body = raw(server, "PUT", "/files/data/x", b"hello")
    assert status == 400 and b"X-Content-SHA256" in body
    assert os.listdir(server.home / "data") == []


@pytest.mark.parametrize(
    "path",
    [
        "/files/data/../token",
        "/files/data/%2e%2e/token",
        "/files/%2Fetc/passwd",
        "/files/data/sub/../../spa.db",
        "/files/nowhere/x",
        "/files/",
        "/files/data/a%00b",
    ],
)
def test_escapes_are_refused_with_a_reason(server: Server, path: str) -> None:
    for method, body in (("GET", b""), ("PUT", b"x")):
        status, reply = raw(
            server, method, path, body, {"X-Content-SHA256": hashlib.sha256(body).hexdigest()}
        )
        assert status in (400, 403, 404), (method, path, status)
        if status != 404 or b"error" in reply:
            assert b"message" in reply
    assert (server.home / "token").read_text().strip() == server.token


def test_a_name_too_long_is_refused_alike_by_get_and_put(server: Server) -> None:
    """GET answered 500 (an internal error) where PUT said what was wrong."""
    path = "/files/data/" + "x" * 300
    for method, body in (("GET", b""), ("PUT", b"x")):
        status, reply = raw(
            server, method, path, body, {"X-Content-SHA256": hashlib.sha256(body).hexdigest()}
        )
        assert status == 400, (method, status, reply)
        assert json.loads(reply)["error"]["code"] == -32004
        assert b"File name too long" in reply


def test_symlinks_that_lead_outside_are_refused(server: Server, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("no")
    (server.home / "data" / "out").symlink_to(outside)
    (server.home / "data" / "tok").symlink_to(server.home / "token")
    client = server.client()
    for remote in ("data/out/secret", "data/tok"):
        with pytest.raises(ServerError, match="outside"):
            client.get_file(remote, io.BytesIO().write)
    local = tmp_path / "f"
    local.write_text("x")
    with pytest.raises(ServerError, match="outside"):
        client.put_file(local, "data/out/new")
    assert not (outside / "new").exists()


def test_logs_are_read_only_and_bin_gets_the_run_bit(server: Server, tmp_path: Path) -> None:
    local = tmp_path / "tool"
    local.write_text("#!/usr/bin/env bash\necho tool says hi\n")
    with pytest.raises(ServerError, match="read only"):
        server.client().put_file(local, "logs/tool")
    assert server.client().put_file(local, "bin/tool", executable=True)["executable"]
    assert os.access(server.home / "bin" / "tool", os.X_OK)
    server.client().put_file(local, "data/plain")
    assert not os.access(server.home / "data" / "plain", os.X_OK)


def test_the_size_limit_refuses_and_writes_nothing(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = make_server().start("--max-file-size", "1000")
    local = tmp_path / "big"
    local.write_bytes(b"x" * 2000)
    with pytest.raises(ServerError, match="over the limit"):
        server.client().put_file(local, "data/big")
    assert os.listdir(server.home / "data") == []


def test_replacing_a_binary_in_use_does_not_break_its_task(server: Server, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.write_text("#!/usr/bin/env bash\necho started\nsleep 1\necho old version ends well\n")
    new = tmp_path / "new"
    new.write_text("#!/usr/bin/env bash\necho new version\n")
    server.client().put_file(old, "bin/tool", executable=True)
    server.define("w", task("t", "tool"))
    server.call("run", workflow="w")
    # Running, bash may not have opened the script yet (env looks for bash first): once it
    # has said so, it reads the old file to its end whatever replaces the name.
    server.wait_task("w", "t", "running")
    wait_for(lambda: server.call("logs", workflow="w", task="t"), what="the old version to start")
    server.client().put_file(new, "bin/tool", executable=True)
    server.wait_status("w", "success0")
    assert server.call("logs", workflow="w", task="t") == "started\nold version ends well\n"
    server.call("run", workflow="w")
    server.wait_status("w", "success0")
    assert server.call("logs", workflow="w", task="t") == "new version\n"


def test_list_and_delete(server: Server, tmp_path: Path) -> None:
    local = tmp_path / "f"
    local.write_text("12345")
    server.client().put_file(local, "data/dir/f")
    areas = {e["path"]: e["type"] for e in server.call("file_list")["entries"]}
    assert areas == {"bin": "folder", "data": "folder", "logs": "folder"}
    entries = server.call("file_list", path="data/dir")["entries"]
    assert [(e["path"], e["size"], e["type"]) for e in entries] == [("data/dir/f", 5, "file")]
    assert server.call("file_list", path="bin/echo")["entries"][0]["type"] == "link"
    server.call("file_delete", path="data/dir/f")
    assert server.call("file_list", path="data/dir")["entries"] == []
    with pytest.raises(ServerError, match="does not exist"):
        server.call("file_delete", path="data/dir/f")
    with pytest.raises(ServerError, match="read only"):
        server.call("file_delete", path="logs/runners.log")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS"))


def test_a_1_gib_copy_keeps_the_server_memory_flat(server: Server, tmp_path: Path) -> None:
    assert server.process is not None
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(1024**3)  # sparse: cheap to make, read as zeros
    before = rss_kib(server.process.pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(server.process.pid))  # type: ignore[union-attr]
            done.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        server.client().put_file(big, "data/big.bin")
        server.client().get_file("data/big.bin", lambda data: None)
    finally:
        done.set()
        sampler.join()
    growth_mib = (peak[0] - before) / 1024
    assert growth_mib < 64, f"the server grew by {growth_mib:.0f} MiB for a 1 GiB copy"
    assert (server.home / "data" / "big.bin").stat().st_size == 1024**3


def test_a_fifo_is_refused_and_does_not_block_the_server(server: Server) -> None:
    os.mkfifo(server.home / "data" / "pipe")
    with pytest.raises(ServerError, match="not a regular file"):
        server.client().get_file("data/pipe", io.BytesIO().write)
    assert server.call("list") == {"projects": []}
