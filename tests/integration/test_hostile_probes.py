"""The probes of a security review, each against the real server: the token, memory through
`logs`, strings that are not Unicode, names, Host, NaN, chunked bodies, file modes, failed
sign-ins and uploads that fail in the system."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import VENV_BIN, Server, clean_env, run_spad, seed, task, tree, wait_for
from tests.integration.test_files import raw

LIST = b'{"jsonrpc": "2.0", "method": "list", "id": 1}'


def post_raw(server: Server, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """A POST with exactly these header bytes (latin-1), as a hostile client sends them."""
    parts = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.putrequest("POST", "/rpc", skip_host="Host" in headers)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            connection.putheader(key, value.encode("latin-1"))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def audit_rows(server: Server, method: str) -> list[sqlite3.Row]:
    with server.db() as db:
        return db.execute("SELECT * FROM audit WHERE method = ? ORDER BY id", (method,)).fetchall()


# -- the token ---------------------------------------------------------------------------


@pytest.mark.parametrize("junk", ["\xa0", "\x85", "\x1c", ""])
def test_an_emptied_token_file_lets_nobody_in(server: Server, junk: str) -> None:
    """A rotation cut by a power failure could leave the file empty; `strip()` made
    "Bearer \\xa0" an empty token equal to it."""
    (server.home / "token").write_text("  \n")
    status, body = post_raw(server, LIST, {"Authorization": f"Bearer {junk}"})
    assert status == 401, body


def test_only_ascii_space_and_tab_are_ignored_around_the_token(server: Server) -> None:
    token = server.token
    assert post_raw(server, LIST, {"Authorization": f"Bearer \t{token} "})[0] == 200
    assert post_raw(server, LIST, {"Authorization": f"Bearer {token}\xa0"})[0] == 401


@pytest.mark.parametrize("content", ["", "   \n", "short-token\n"])
def test_a_token_under_32_characters_stops_the_start(tmp_path: Path, content: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text(content)
    result = run_spad("--home", str(home), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "fewer than 32" in result.stderr and "spad token --rotate" in result.stderr
    assert "Traceback" not in result.stderr
    rotated = run_spad("token", "--home", str(home), "--rotate")
    assert rotated.returncode == 0 and len(rotated.stdout.strip()) >= 32


def test_rotation_refuses_a_leftover_or_linked_token_new(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_spad("token", "--home", str(home)).returncode == 0
    before = (home / "token").read_text()
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (home / "token.new").symlink_to(target)
    result = run_spad("token", "--home", str(home), "--rotate")
    assert result.returncode == 2 and "token.new exists" in result.stderr
    assert target.read_text() == "keep" and (home / "token").read_text() == before
    (home / "token.new").unlink()
    (home / "token.new").write_text("half")
    assert run_spad("token", "--home", str(home), "--rotate").returncode == 2
    (home / "token.new").unlink()
    result = run_spad("token", "--home", str(home), "--rotate")
    assert result.returncode == 0 and (home / "token").read_text() != before
    assert stat.S_IMODE((home / "token").stat().st_mode) == 0o600
    assert not (home / "token.new").exists()


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_rotation_flushes_the_new_token_and_the_folder_before_and_after_the_rename(
    tmp_path: Path,
) -> None:
    """What survives a power cut cannot be watched; the calls that make it so can."""
    home = tmp_path / "home"
    assert run_spad("token", "--home", str(home)).returncode == 0
    trace = tmp_path / "trace"
    traced = "trace=openat,fsync,rename,renameat,renameat2"
    rotate = [str(VENV_BIN / "spad"), "token", "--home", str(home), "--rotate"]
    subprocess.run(
        ["strace", "-o", str(trace), "-e", traced, *rotate],
        check=True,
        capture_output=True,
        env=clean_env(),
        timeout=60,
    )
    text = trace.read_text()
    made = re.search(r'token\.new", O_WRONLY\|O_CREAT\|O_EXCL\|O_NOFOLLOW\S*, 0600\) = (\d+)', text)
    assert made, text[-2000:]
    renamed = re.search(r"rename\w*\(.*token\.new", text)
    assert renamed and renamed.start() > made.end()
    assert f"fsync({made.group(1)})" in text[made.end() : renamed.start()]
    folder = re.compile(rf'"{re.escape(str(home))}", O_RDONLY\S*O_DIRECTORY\S*\) = (\d+)')
    opened = folder.search(text, renamed.end())
    assert opened and f"fsync({opened.group(1)})" in text[opened.end() :]


# -- memory through logs -----------------------------------------------------------------


def rss_high_water_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def test_a_batch_of_logs_on_a_large_log_keeps_the_server_small(server: Server) -> None:
    """40 `logs` calls on a 10 MB log in one 4 KB request took the server to 1.2 GB."""
    server.script("big", "yes 0123456789012345678901234567890123456789 | head -c 10000000\n")
    server.define("wf1", task("t1", "big"))
    server.call("run", workflow="wf1")
    server.wait_status("wf1", "success0", timeout=60)
    assert server.process is not None
    baseline = rss_high_water_kib(server.process.pid)
    params = {"project": "pr1", "workflow": "wf1", "task": "t1"}
    batch = [{"jsonrpc": "2.0", "method": "logs", "params": params, "id": i} for i in range(40)]
    status, replies = server.post(json.dumps(batch))
    assert status == 200 and len(replies) == 40
    served = [r for r in replies if "result" in r]
    refused = [r for r in replies if "error" in r]
    assert 10 <= len(served) <= 16 and refused, (len(served), len(refused))
    assert all("16 MiB" in r["error"]["message"] for r in refused)
    assert sum(len(json.dumps(r["result"])) for r in served) <= 16 * 1024 * 1024
    peak = rss_high_water_kib(server.process.pid)
    assert peak < 100 * 1024, f"the server peaked at {peak} KiB (from {baseline} KiB)"
    assert server.call("list")["projects"]  # and it still answers


def test_one_logs_reply_is_at_most_1_mib_and_offset_pages_through(server: Server) -> None:
    server.script("big", "yes 0123456789012345678901234567890123456789 | head -c 3000000\n")
    server.define("wf1", task("t1", "big"))
    server.call("run", workflow="wf1")
    server.wait_status("wf1", "success0", timeout=60)
    whole = server.call("logs", workflow="wf1", task="t1")
    assert len(json.dumps(whole).encode()) <= 1024 * 1024
    assert whole.startswith("[spad: ") and "offset=0" in whole.splitlines()[0]
    assert whole.endswith("0123456789\n" if whole.endswith("\n") else whole[-5:])
    offset, pages, total = 0, 0, 0
    while True:
        page = server.call("logs", workflow="wf1", task="t1", offset=offset)
        assert len(json.dumps(page).encode()) <= 1024 * 1024
        if page["offset"] == offset:
            break
        total += len(page["text"].encode())
        offset, pages = page["offset"], pages + 1
    assert total == 3_000_000 and pages == 3
    tail = server.call("logs", workflow="wf1", task="t1", tail=1_000_000)
    assert len(json.dumps(tail).encode()) <= 1024 * 1024


def test_every_tasks_log_together_stays_within_a_reply(server: Server) -> None:
    server.script("big", "yes 0123456789012345678901234567890123456789 | head -c 900000\n")
    server.define("wf1", *(task(f"t{i}", "big", exec="parallel") for i in range(3)))
    server.call("run", workflow="wf1")
    server.wait_status("wf1", "success0", timeout=60)
    text = server.call("logs", workflow="wf1")
    assert len(json.dumps(text).encode()) <= 1024 * 1024
    assert all(f"t{i} | " in text for i in range(3))  # each task has its share


def test_a_log_of_control_characters_stays_within_a_reply(server: Server) -> None:
    """Escaped in JSON, a control character takes six bytes: the cap counts the reply."""
    server.script("noise", "head -c 900000 /dev/zero\n")
    server.define("wf1", task("t1", "noise"))
    server.call("run", workflow="wf1")
    server.wait_status("wf1", "success0", timeout=60)
    status, reply = server.post(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "logs",
                "params": {"workflow": "wf1", "task": "t1", "offset": 0},
                "id": 1,
            }
        )
    )
    assert status == 200 and 0 < reply["result"]["offset"] < 900_000
    assert len(json.dumps(reply).encode()) <= 1024 * 1024


# -- strings that are not Unicode --------------------------------------------------------


def test_a_lone_surrogate_is_invalid_changes_nothing_and_is_audited(server: Server) -> None:
    victim = os.path.join(os.fsencode(server.home / "data"), b"x\xff")
    Path(os.fsdecode(victim)).write_text("keep")
    body = (
        b'{"jsonrpc": "2.0", "method": "file_delete", "params": {"path": "data/x\\udcff"}, "id": 1}'
    )
    status, reply = server.post(body)
    assert status == 200 and reply["error"]["code"] == -32602
    assert "Unicode" in reply["error"]["message"]
    assert os.path.exists(victim)
    (row,) = audit_rows(server, "file_delete")
    assert row["outcome"].startswith("error -32602") and "\\udcff" in row["detail"]


def test_a_lone_surrogate_cannot_poison_a_definition(server: Server) -> None:
    server.call("create", **seed())
    poisoned = tree([{"name": "wf1", "tasks": [task("t11", env={"X": "\ud800"})]}])
    body = json.dumps({"jsonrpc": "2.0", "method": "update", "params": poisoned, "id": 1})
    assert "\\ud800" in body
    status, reply = server.post(body)
    assert status == 200 and reply["error"]["code"] == -32602
    dumped = json.dumps(server.call("dump", project="pr1"))
    assert '"env": {}' in dumped and "ud800" not in dumped
    assert audit_rows(server, "update")[-1]["outcome"].startswith("error -32602")


def test_a_file_name_that_is_not_utf8_is_listed_not_dropped(server: Server) -> None:
    Path(os.fsdecode(os.path.join(os.fsencode(server.home / "data"), b"odd\xff"))).write_text("")
    status, reply = server.post(
        json.dumps({"jsonrpc": "2.0", "method": "file_list", "params": {"path": "data"}, "id": 1})
    )
    assert status == 200
    assert any(e["path"] == "data/odd\udcff" for e in reply["result"]["entries"])


# -- names, Host, NaN --------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["pr1\n", "wf1\n"])
def test_a_name_ending_in_a_newline_is_refused(server: Server, bad: str) -> None:
    project, workflow = ("pr1\n", "wf1") if bad == "pr1\n" else ("pr1", "wf1\n")
    definition = tree([{"name": workflow, "tasks": [task("t1")]}], project=project)
    status, reply = server.post(
        json.dumps({"jsonrpc": "2.0", "method": "create", "params": definition, "id": 1})
    )
    assert status == 200 and reply["error"]["code"] == -32602
    assert server.call("list") == {"projects": []}


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7070", "127.0.0.1.nip.io"])
def test_a_foreign_host_is_refused(server: Server, host: str) -> None:
    status, body = post_raw(server, LIST, {"Host": host, "Authorization": f"Bearer {server.token}"})
    assert status == 403
    reply = json.loads(body)
    assert (
        reply["error"]["data"]["kind"] == "forbidden"
        and "--allow-host" in reply["error"]["message"]
    )


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:7070", "127.0.0.1", "[::1]:7070"])
def test_loopback_hosts_are_served(server: Server, host: str) -> None:
    status, _ = post_raw(server, LIST, {"Host": host, "Authorization": f"Bearer {server.token}"})
    assert status == 200


def test_allow_host_names_a_host(server: Server) -> None:
    server.stop()
    server.start("--allow-host", "spad.lab.example", "--allow-host", "other.example")
    for host, wanted in (
        ("spad.lab.example:7070", 200),
        ("other.example", 200),
        ("x.example", 403),
    ):
        status, _ = post_raw(
            server, LIST, {"Host": host, "Authorization": f"Bearer {server.token}"}
        )
        assert status == wanted, host


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_are_not_json(server: Server, constant: str) -> None:
    body = f'{{"jsonrpc": "2.0", "method": "list", "id": {constant}}}'
    status, reply = server.post(body)  # the reply parses: conftest's json.loads is strict
    assert status == 200 and reply["error"]["code"] == -32700


def test_nothing_the_server_sends_is_nan(server: Server) -> None:
    body = (
        '{"jsonrpc": "2.0", "method": "signal_raise", "params": {"source": "s", "kind": "k", '
        '"severity": "info", "value": NaN}, "id": 1}'
    )
    _, reply = server.post(body)
    assert reply["error"]["code"] == -32700


# -- bodies, modes, sign-ins, uploads ----------------------------------------------------


def test_a_chunked_body_is_not_read_past_the_limit(server: Server) -> None:
    parts = urllib.parse.urlsplit(server.url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as sock:
        sock.sendall(
            b"POST /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Authorization: Bearer " + server.token.encode() + b"\r\n\r\n"
        )
        chunk = b"%x\r\n" % (1 << 20) + b"[" * (1 << 20) + b"\r\n"
        sent = 0
        try:
            while sent < 200:  # MiB, at most
                sock.sendall(chunk)
                sent += 1
        except OSError:
            pass  # the server stopped reading and closed: what is wanted
    assert sent < 40, f"the server read {sent} MiB of a body it had refused at 16"
    assert server.call("list") == {"projects": []}


def test_the_store_and_the_logs_are_private(server: Server) -> None:
    server.define("wf1", task("t1"))
    server.call("run", workflow="wf1")
    server.wait_status("wf1", "success0", timeout=60)
    home = server.home
    for path in (home / "spa.db", home / "spa.db-wal", home / "spa.db-shm", home / "token"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((home / "logs").stat().st_mode) == 0o700


def test_modes_are_tightened_on_an_existing_home(make_server: Any) -> None:
    spad = make_server()
    spad.start()
    spad.stop()
    (spad.home / "spa.db").chmod(0o644)
    (spad.home / "logs").chmod(0o755)
    spad.start()
    assert stat.S_IMODE((spad.home / "spa.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((spad.home / "logs").stat().st_mode) == 0o700


def test_failed_sign_ins_are_counted_in_one_row(server: Server) -> None:
    for _ in range(100):
        assert post_raw(server, LIST, {"Authorization": "Bearer wrong"})[0] == 401

    def counted() -> bool:
        rows = audit_rows(server, "sign_in")
        return len(rows) == 1 and rows[0]["outcome"] == "refused: 100 failed sign-ins"

    wait_for(counted, timeout=10, what="one row counting 100 failed sign-ins")
    assert audit_rows(server, "sign_in")[0]["client"] == "127.0.0.1"


def test_an_upload_that_fails_in_the_system_is_the_clients_error_and_audited(
    server: Server,
) -> None:
    payload = b"abc"
    headers = {"X-Content-SHA256": hashlib.sha256(payload).hexdigest()}
    status, body = raw(server, "PUT", "/files/data/" + "n" * 300, payload, headers)
    assert status == 400, body
    assert "File name too long" in json.loads(body)["error"]["message"]
    (row,) = audit_rows(server, "file_put")
    assert row["outcome"].startswith("refused: ")
    (server.home / "data" / "plain").write_text("x")
    status, body = raw(server, "PUT", "/files/data/plain/inner", payload, headers)
    assert status == 400 and "not a folder" in json.loads(body)["error"]["message"]
    assert len(audit_rows(server, "file_put")) == 2
