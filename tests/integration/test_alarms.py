"""Alarms end to end: signals from tasks, from PostgreSQL and SQLite tables, through restarts of
spad and of the database, with nothing lost and nothing applied twice."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spad.cli.client import ServerError
from tests.conftest import VENV_BIN, Server, clean_env, task, wait_for

TABLE = """CREATE TABLE {name} (id bigserial PRIMARY KEY, source text NOT NULL, kind text NOT NULL,
severity text NOT NULL, message text, value double precision, project text)"""


def configure(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "spad.toml").write_text(text)


def pg_source(postgres: Any, table: str, **extra: Any) -> str:
    postgres.execute(f"DROP TABLE IF EXISTS {table}")
    postgres.execute(TABLE.format(name=table))
    lines = [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return (
        f'[[alarms.sources]]\nname = "pg"\ndsn = "{postgres.dsn}"\ntable = "{table}"\n'
        + "\n".join(lines)
        + "\n"
    )


def insert(postgres: Any, table: str, count: int, kinds: int = 10, start: int = 0) -> None:
    values = ", ".join(
        f"('ana', 'k{(start + i) % kinds}', 'warning', 'row {start + i}', {start + i}, 'pr1')"
        for i in range(count)
    )
    postgres.execute(
        f"INSERT INTO {table} (source, kind, severity, message, value, project) VALUES {values}"
    )


def alarms(server: Server, **filters: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = server.call("alarms_list", **filters)["alarms"]
    return result


def journal(server: Server, lines: int) -> list[dict[str, Any]]:
    """alarms.log once it holds ``lines`` events: a writer journals after its commit, so what
    spa.db shows can be a moment ahead of the journal."""
    path = server.home / "logs" / "alarms.log"

    def read() -> list[dict[str, Any]] | None:
        events = [json.loads(line) for line in path.read_text().splitlines()]
        return events if len(events) >= lines else None

    found: list[dict[str, Any]] = wait_for(read, what=f"{lines} events in alarms.log")
    return found


def total_count(server: Server) -> int:
    """Signals counted in the sources' alarms (spad's own, e.g. a source away, left out)."""
    return sum(a["count"] for a in alarms(server) if a["source"] != "spad")


def test_a_signal_raised_by_a_task_becomes_an_alarm(server: Server) -> None:
    server.script(
        "detect",
        "spa_ctl signal raise --source detector --kind drift "
        "--severity warning --message 'drift of 3 sigma' --value 3\n",
    )
    server.define("w", task("t", "detect"))
    server.call("run", workflow="w")
    server.wait_status("w", "success0")
    (alarm,) = wait_for(lambda: alarms(server), what="the alarm")
    assert {
        k: alarm[k] for k in ("project", "source", "kind", "severity", "state", "count", "message")
    } == {
        "project": "pr1",
        "source": "detector",
        "kind": "drift",
        "severity": "warning",
        "state": "open",
        "count": 1,
        "message": "drift of 3 sigma",
    }
    assert set(alarm) >= {"id", "first_seen", "last_seen"}


def test_a_journal_that_cannot_be_written_fails_no_call(server: Server) -> None:
    """The journal is written after spa.db's commit: an acknowledgement made was answered as
    an internal error, and the watcher died on each new alarm."""
    (server.home / "logs" / "alarms.log").mkdir()  # what a project of that name once did
    server.call("signal_raise", source="s", kind="k", severity="warning")
    wait_for(lambda: total_count(server) == 1, what="the signal applied")
    [alarm] = alarms(server)
    assert server.call("alarm_ack", id=alarm["id"])["state"] == "acknowledged"
    server.call("signal_raise", source="s", kind="k2", severity="warning")
    wait_for(lambda: total_count(server) == 2, what="the watcher still applying signals")


def test_dedup_lifecycle_journal_and_filters(server: Server) -> None:
    for severity in ("warning", "warning", "critical"):
        server.call("signal_raise", source="s", kind="k", severity=severity, message=severity)
    server.call("signal_raise", source="s", kind="other", severity="info")
    wait_for(lambda: total_count(server) == 4, what="four signals applied")
    by_kind = {a["kind"]: a for a in alarms(server)}
    assert (by_kind["k"]["count"], by_kind["k"]["severity"]) == (3, "critical")
    assert [a["kind"] for a in alarms(server, severity="info")] == ["other"]
    alarm_id = by_kind["k"]["id"]
    journal(server, 3)  # the watcher's lines, before the acknowledgement's
    assert server.call("alarm_ack", id=alarm_id)["state"] == "acknowledged"
    with pytest.raises(ServerError, match="cannot be acknowledged"):
        server.call("alarm_ack", id=alarm_id)
    server.call("alarm_clear", id=by_kind["other"]["id"])
    server.call("signal_raise", source="s", kind="k", severity="clear")
    wait_for(lambda: not alarms(server, state=["open", "acknowledged"]), what="all cleared")
    with pytest.raises(ServerError, match="does not exist"):
        server.call("alarm_clear", id=999)
    events = journal(server, 6)
    assert [(e["event"], e["kind"]) for e in events] == [
        ("opened", "k"),
        ("escalated", "k"),
        ("opened", "other"),
        ("acknowledged", "k"),
        ("cleared", "other"),
        ("cleared", "k"),
    ]
    history = (
        server.db()
        .execute("SELECT event FROM alarm_history WHERE alarm_id = ? ORDER BY id", (alarm_id,))
        .fetchall()
    )
    assert [row[0] for row in history] == ["opened", "escalated", "acknowledged", "cleared"]


def test_a_flapping_source_reopens_one_alarm(server: Server) -> None:
    for severity in ("warning", "clear") * 5:
        server.call("signal_raise", source="s", kind="flap", severity=severity)
    wait_for(lambda: alarms(server) and alarms(server)[0]["count"] == 5, what="five repeats")
    assert len(alarms(server)) == 1


def test_the_on_open_hook_gets_the_alarm_on_stdin(make_server: Callable[..., Server]) -> None:
    spad = make_server()
    configure(spad.home, '[alarms]\non_open = "notify"\n')
    spad.start()
    spad.script("notify", 'cat > "notified-$(date +%s%N).json"\n')
    spad.call("signal_raise", source="s", kind="k", severity="critical", message="boom")

    def written() -> dict[str, Any] | None:  # the shell makes the file before cat fills it
        files = list((spad.home / "data").glob("notified-*.json"))
        try:
            return json.loads(files[0].read_text()) if files else None
        except json.JSONDecodeError:
            return None

    payload = wait_for(written, what="the hook's file")
    assert (payload["event"], payload["kind"], payload["message"]) == ("opened", "k", "boom")


def test_a_row_in_postgresql_shows_up_within_seconds(
    make_server: Callable[..., Server], postgres: Any
) -> None:
    spad = make_server()
    configure(spad.home, pg_source(postgres, "anomalies"))
    spad.start()
    spad.script(
        "analyse",
        f'psql "{postgres.dsn}" -qc "INSERT INTO anomalies (source, kind, '
        "severity, message, project) VALUES ('ana', 'spike', 'critical', 'too high', "
        "'pr1')\"\n",
    )
    spad.define("w", task("t", "analyse"))
    spad.call("run", workflow="w")
    spad.wait_status("w", "success0")
    inserted = time.monotonic()
    (alarm,) = wait_for(lambda: alarms(spad), what="the alarm from PostgreSQL")
    latency = time.monotonic() - inserted
    assert (alarm["kind"], alarm["severity"], alarm["project"]) == ("spike", "critical", "pr1")
    assert latency < 5, f"{latency:.2f}s from the row to the alarm"
    result = subprocess.run(
        [str(VENV_BIN / "spa_ctl"), "alarms", "--open"],
        capture_output=True,
        text=True,
        env=clean_env(SPA_URL=spad.url, SPA_HOME=str(spad.home)),
        check=True,
        timeout=30,
    )
    assert "spike" in result.stdout and "too high" in result.stdout


def test_listen_notify_wakes_the_watcher(make_server: Callable[..., Server], postgres: Any) -> None:
    spad = make_server()
    configure(
        spad.home,
        "[alarms]\npoll_interval = 60\n" + pg_source(postgres, "notified", channel="spad_alarms"),
    )
    postgres.execute(
        "CREATE OR REPLACE FUNCTION spad_notify() RETURNS trigger AS $$ BEGIN "
        "PERFORM pg_notify('spad_alarms', NEW.id::text); RETURN NEW; END $$ "
        "LANGUAGE plpgsql"
    )
    postgres.execute(
        "CREATE TRIGGER notify AFTER INSERT ON notified FOR EACH ROW EXECUTE FUNCTION spad_notify()"
    )
    spad.start()
    assert spad.stderr_path is not None
    watcher_log = spad.stderr_path
    # The row must come after the watcher's LISTEN and first read, or polling alone would find it.
    wait_for(
        lambda: postgres.query(
            "SELECT count(*) FROM pg_stat_activity WHERE "
            "application_name = 'spad alarms' AND state = 'idle'"
        ),
        what="the watcher to listen",
    )
    insert(postgres, "notified", 1)
    wait_for(lambda: alarms(spad), timeout=10, what="the notified row (poll interval is 60 s)")
    assert "Traceback" not in (watcher_log.read_text() if watcher_log.exists() else "")


def test_a_sqlite_source(make_server: Callable[..., Server], tmp_path: Path) -> None:
    database = tmp_path / "analyses.db"
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE found (seq INTEGER PRIMARY KEY, source TEXT, kind TEXT, "
            "severity TEXT, message TEXT)"
        )
        conn.execute(
            "INSERT INTO found (source, kind, severity, message) VALUES "
            "('lab', 'temp', 'warning', 'warm')"
        )
    spad = make_server()
    configure(
        spad.home,
        f'[[alarms.sources]]\nname = "lab"\ndsn = "sqlite:///{database}"\n'
        'table = "found"\nid_column = "seq"\n',
    )
    spad.start()
    (alarm,) = wait_for(lambda: alarms(spad), what="the alarm from SQLite")
    assert (alarm["source"], alarm["project"], alarm["value"]) == ("lab", None, None)


def test_a_restart_of_spad_loses_and_duplicates_nothing(
    make_server: Callable[..., Server], postgres: Any
) -> None:
    first = make_server()
    configure(first.home, pg_source(postgres, "stream"))
    first.start()
    insert(postgres, "stream", 300, start=0)
    wait_for(lambda: total_count(first) > 0, what="the first rows")
    assert first.process is not None
    first.process.kill()  # the watcher dies with it (parent-death signal)
    first.process.wait()
    insert(postgres, "stream", 200, start=300)
    second = make_server().start()
    wait_for(lambda: total_count(second) == 500, timeout=30, what="all 500 rows, once each")
    assert [a["count"] for a in alarms(second)] == [50] * 10


def test_the_database_restarted_mid_stream(
    make_server: Callable[..., Server], postgres: Any
) -> None:
    spad = make_server()
    configure(spad.home, pg_source(postgres, "flaky"))
    spad.start()
    insert(postgres, "flaky", 40, start=0)
    wait_for(lambda: total_count(spad) == 40, what="the first 40 rows")
    log = spad.stderr_path
    assert log is not None
    postgres.stop()
    try:
        started = time.monotonic()
        assert spad.call("list") is not None  # the server does not wait for the database
        assert time.monotonic() - started < 5  # not behind the watcher's reconnects
        wait_for(lambda: "is away" in log.read_text(), what="spad's log to say")
        away = wait_for(
            lambda: [a for a in alarms(spad) if a["source"] == "spad"], what="an alarm to say"
        )
        assert away[0]["kind"] == "source_away.pg" and away[0]["state"] == "open"
    finally:
        postgres.start()
    insert(postgres, "flaky", 60, start=40)
    wait_for(lambda: total_count(spad) == 100, timeout=30, what="all 100 rows after the restart")
    wait_for(lambda: "is back" in log.read_text(), what="spad's log to say it is back")
    wait_for(
        lambda: [a["state"] for a in alarms(spad) if a["source"] == "spad"] == ["cleared"],
        what="the source's alarm to clear",
    )


def test_two_watchers_never_apply_a_row_twice(
    make_server: Callable[..., Server], postgres: Any
) -> None:
    spad = make_server()
    configure(spad.home, "[alarms]\npoll_interval = 0.05\n" + pg_source(postgres, "twice"))
    spad.start()
    second = subprocess.Popen(
        [sys.executable, "-m", "spad.alarms.watcher", str(spad.home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for batch in range(10):
            insert(postgres, "twice", 30, start=batch * 30)
        wait_for(lambda: total_count(spad) >= 300, timeout=30, what="300 rows")
        time.sleep(0.5)  # both watchers have polled again since: a double would show now
        assert total_count(spad) == 300
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=10)


def test_a_bad_configuration_stops_the_start_naming_the_field(tmp_path: Path) -> None:
    home = tmp_path / "h"
    configure(home, '[[alarms.sources]]\nname = "x"\ndsn = "mysql://nope"\ntable = "t; drop"\n')
    result = subprocess.run(
        [str(VENV_BIN / "spad"), "--home", str(home), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "alarms.sources[0].dsn" in result.stderr and "alarms.sources[0].table" in result.stderr


def watchers(home: Path) -> list[str]:
    found = subprocess.run(
        ["pgrep", "-f", f"spad.alarms.watcher {home}"], capture_output=True, text=True, check=False
    )
    return found.stdout.split()


def test_the_watcher_starts_with_the_first_signal_only(server: Server) -> None:
    assert watchers(server.home) == []  # an idle server costs one process, not two
    server.call("signal_raise", source="s", kind="k", severity="info")
    wait_for(lambda: alarms(server), what="the alarm")
    assert len(watchers(server.home)) == 1


def test_a_hook_that_reads_late_never_stalls_the_watcher(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    """A 120 KB message to a hook that sleeps before reading its stdin stalled every alarm
    for 46 s; now the next alarm comes at once, the message is cut at 8 KiB, and the hook is
    killed at its timeout, which the watcher's log says."""
    database = tmp_path / "analyses.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE found (id INTEGER PRIMARY KEY, source, kind, severity, message)")
        conn.execute("INSERT INTO found VALUES (1, 'lab', 'big', 'critical', ?)", ("m" * 120_000,))
    spad = make_server()
    configure(
        spad.home,
        '[alarms]\non_open = "late"\nhook_timeout = 2\npoll_interval = 0.2\n'
        f'[[alarms.sources]]\nname = "lab"\ndsn = "sqlite:///{database}"\ntable = "found"\n',
    )
    (spad.home / "bin").mkdir()
    spad.script("late", 'echo $$ > "$SPA_HOME/data/late.pid"\nsleep 60\ncat > /dev/null\n')
    spad.start()
    (big,) = wait_for(lambda: alarms(spad), what="the first alarm")
    assert len(big["message"].encode()) <= 8 * 1024
    assert big["message"].endswith("[cut: 120000 bytes in all]")
    with sqlite3.connect(database) as conn:
        conn.execute("INSERT INTO found VALUES (2, 'lab', 'next', 'critical', 'x')")
    started = time.monotonic()
    wait_for(lambda: len(alarms(spad)) == 2, timeout=10, what="the next alarm")
    assert time.monotonic() - started < 5
    log = spad.stderr_path
    assert log is not None  # the watcher's messages go where spad's own go
    wait_for(lambda: "killed" in log.read_text(), timeout=15, what="the hook killed and logged")
    hook_pid = int((spad.home / "data" / "late.pid").read_text())
    wait_for(lambda: not Path(f"/proc/{hook_pid}").exists(), timeout=10, what="the hook gone")
