"""The live view's costs, each beside a baseline measured in the same run.

L1  event latency: transition written by a runner -> event parsed by a stream client, at about
    100 transitions a second; beside it what polling ``status`` once a second (``watch -n1
    spa_ctl status``, the way before the stream) sees: its delay, and how many transitions it
    never sees at all.
L2  a ``GET /metrics`` scrape of 300 workflows, beside a ``list`` call on the same store and a
    ``GET /info`` (the HTTP round trip alone), on a kept-alive connection.
L3  the server's PSS idle, then with 10 dashboards connected (the page's files loaded, its
    first reads done, 10 event streams open), beside an idle supervisord's.
L4  what the journal's triggers cost a status write (the runner's hot path): 2,000 task status
    changes in one transaction, with the triggers and without.

Usage: bench/live.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import calendar
import http.client
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from systems import Spad, Supervisord

from spad.cli.client import read_events
from spad.store import runs
from spad.store.sqlite import connect, migrate

MIB = 1024.0


def iso_seconds(iso: str) -> float:
    whole = time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(whole) + int(iso[20:23]) / 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


class StreamClient:
    """An event stream read in a thread; each event with the time it was parsed."""

    def __init__(self, spad: Spad) -> None:
        assert spad.client is not None
        host, port = spad.client.url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=120)
        self.connection.request(
            "GET", "/events", headers={"Authorization": f"Bearer {spad.client.token}"}
        )
        self.response = self.connection.getresponse()
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.opened = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        self.opened.wait(30)

    def _read(self) -> None:
        try:
            for message in read_events(self.response):
                if message.comment is not None:
                    self.opened.set()
                    continue
                self.received.append((time.time(), {"kind": message.kind, **message.data}))
        except (OSError, ValueError, AttributeError):
            pass

    def close(self) -> None:
        if self.connection.sock is not None:
            self.connection.sock.close()
        self.connection.close()


def l1_latency(tasks: int) -> dict[str, Any]:
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        spad.define(
            "lat",
            [
                {"name": f"t{i}", "function": "sleep", "params": ["0.015"], "exec": "await"}
                for i in range(tasks)
            ],
        )
        stream = StreamClient(spad)
        polled: dict[tuple[str, int, str], float] = {}
        done = threading.Event()

        def poll() -> None:  # the way before: status once a second
            while not done.is_set():
                seen = time.time()
                for row in spad.call("status", project="bench", workflow="lat")["tasks"]:
                    polled.setdefault((row["name"], row["attempt"] or 0, row["status"]), seen)
                done.wait(1.0)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        started = time.time()
        run_id = spad.call("run", project="bench", workflow="lat")["run_id"]
        deadline = time.monotonic() + 300
        while not any(
            e["kind"] == "workflow" and e["status"] == "success0" and e["run_id"] == run_id
            for _, e in stream.received
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the run did not end")
            time.sleep(0.05)
        done.set()
        poller.join()
        stream.close()
        transitions = [
            (at, e)
            for at, e in stream.received
            if e["kind"] == "task" and e["status"] in ("running", "success0")
        ]
        latencies = [(at - iso_seconds(e["at"])) * 1000 for at, e in transitions]
        elapsed = max(iso_seconds(e["at"]) for _, e in transitions) - started
        polled_delays = [
            (polled[key] - iso_seconds(e["at"])) * 1000
            for _, e in transitions
            if (key := (e["task"], e["attempt"], e["status"])) in polled
        ]
        return {
            "transitions": len(transitions),
            "rate_per_s": len(transitions) / elapsed,
            "stream_p50_ms": percentile(latencies, 0.5),
            "stream_p99_ms": percentile(latencies, 0.99),
            "poll_p50_ms": percentile(polled_delays, 0.5),
            "poll_p99_ms": percentile(polled_delays, 0.99),
            "poll_seen_share": len(polled_delays) / len(transitions),
        }
    finally:
        spad.stop()


def timed(action: Any, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def l2_scrape(workflows: int, repeat: int) -> dict[str, Any]:
    spad = Spad()
    try:
        spad.start()
        spad.prepare_bin()
        spad.call(
            "create",
            project={
                "name": "bench",
                "workflows": [
                    {"name": f"w{i}", "tasks": [{"name": "t", "function": "true"}]}
                    for i in range(workflows)
                ],
            },
        )
        for i in range(0, workflows, 3):  # a third have run: rows to join
            spad.call("run", project="bench", workflow=f"w{i}")
        with spad.db() as conn:
            deadline = time.monotonic() + 120
            while conn.execute("SELECT count(*) FROM runs WHERE finished = 0").fetchone()[0]:
                if time.monotonic() > deadline:
                    raise TimeoutError("runs did not end")
                time.sleep(0.05)
        assert spad.client is not None
        host, port = spad.client.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)  # kept alive
        headers = {"Authorization": f"Bearer {spad.client.token}"}

        def get(path: str) -> None:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, path

        get("/metrics")
        spad.call("list")
        results = {
            "scrape_ms": statistics.median(timed(lambda: get("/metrics"), repeat)),
            "info_ms": statistics.median(timed(lambda: get("/info"), repeat)),
            "list_ms": statistics.median(timed(lambda: spad.call("list"), repeat)),
        }
        connection.close()
        return results
    finally:
        spad.stop()


def dashboard(spad: Spad) -> StreamClient:
    """What one dashboard tab does when it opens: its files, its first reads, its stream."""
    assert spad.client is not None
    for name in ("", "app.js", "app.css"):
        with urllib.request.urlopen(spad.client.url + "/ui/" + name, timeout=30) as response:
            response.read()
    spad.call("list")
    spad.call("alarms_list", state=["open", "acknowledged"], limit=200)
    return StreamClient(spad)


def l3_memory(dashboards: int) -> dict[str, Any]:
    spad = Spad()
    try:
        spad.start()
        spad.call("list")
        time.sleep(1.0)
        idle = spad.own_pss() / MIB
        tabs = [dashboard(spad) for _ in range(dashboards)]
        time.sleep(1.0)
        watched = spad.own_pss() / MIB
        for tab in tabs:
            tab.close()
    finally:
        spad.stop()
    sup = Supervisord()
    try:
        sup.start()
        time.sleep(1.0)
        sup_idle = sup.pss() / MIB
    finally:
        sup.stop()
    return {"spad_idle": idle, "spad_dashboards": watched, "supervisord_idle": sup_idle}


def l4_trigger_cost(changes: int) -> dict[str, Any]:
    def store(folder: Path, triggers: bool) -> sqlite3.Connection:
        conn = connect(folder / f"spa-{triggers}.db")
        migrate(conn)
        if not triggers:
            names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            for (name,) in names.fetchall():
                conn.execute(f"DROP TRIGGER {name}")
        conn.execute("INSERT INTO projects (ext_id, name) VALUES (1, 'p')")
        conn.execute("INSERT INTO workflows (project_id, ext_id, name) VALUES (1, 1, 'w')")
        conn.execute(
            "INSERT INTO tasks (workflow_id, ext_id, name, place, exec, function, params,"
            " retries, retry_delay, stop_signal, stop_timeout, env, cwd)"
            " VALUES (1, 1, 't', 1, 'await', 'true', '[]', 1, 1, 'SIGTERM', 6, '{}', 'data')"
        )
        return conn

    def writes(conn: sqlite3.Connection) -> float:
        run_id = runs.create(conn, 1, ["t"])
        started = time.perf_counter()
        conn.execute("BEGIN")
        for number in range(changes):
            runs.set_task_status(conn, run_id, "t", "running" if number % 2 else "rerun")
        conn.execute("COMMIT")
        return (time.perf_counter() - started) * 1e6 / changes

    with tempfile.TemporaryDirectory(prefix="spad-bench-triggers-") as name:
        folder = Path(name)
        with_triggers, without = store(folder, True), store(folder, False)
        try:
            samples = [(writes(with_triggers), writes(without)) for _ in range(5)]
        finally:
            with_triggers.close()
            without.close()
    return {
        "with_us": statistics.median(s[0] for s in samples),
        "without_us": statistics.median(s[1] for s in samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    tasks, workflows, repeat = (40, 30, 5) if args.quick else (600, 300, 50)
    latency = l1_latency(tasks)
    scrape = l2_scrape(workflows, repeat)
    memory = l3_memory(2 if args.quick else 10)
    triggers = l4_trigger_cost(200 if args.quick else 2000)
    rows = [
        ("L1 transitions/s measured", latency["rate_per_s"], None, None),
        ("L1 event latency p50 ms (stream | poll 1 s)", latency["stream_p50_ms"],
         latency["poll_p50_ms"], "stream/poll"),
        ("L1 event latency p99 ms (stream | poll 1 s)", latency["stream_p99_ms"],
         latency["poll_p99_ms"], "stream/poll"),
        ("L1 share of transitions seen (stream | poll 1 s)", 1.0,
         latency["poll_seen_share"], "stream/poll"),
        (f"L2 ms per request, {workflows} workflows (metrics | list)", scrape["scrape_ms"],
         scrape["list_ms"], "metrics/list"),
        ("L2 ms per request (metrics | GET /info, the HTTP floor)", scrape["scrape_ms"],
         scrape["info_ms"], "metrics/info"),
        ("L3 PSS MiB, idle (spad | supervisord)", memory["spad_idle"],
         memory["supervisord_idle"], "spad/sup"),
        (f"L3 PSS MiB, {2 if args.quick else 10} dashboards (spad | supervisord idle)",
         memory["spad_dashboards"], memory["supervisord_idle"], "spad/sup"),
        ("L4 us per status write (triggers | none)", triggers["with_us"],
         triggers["without_us"], "with/without"),
    ]  # fmt: skip
    print(f"{'measure':<62}{'value':>12}{'baseline':>12}  ratio")
    for name, value, baseline, label in rows:
        ratio = f"{value / baseline:.2f} {label}" if baseline else ""
        base = f"{baseline:>12.3g}" if baseline is not None else f"{'':>12}"
        print(f"{name:<62}{value:>12.3g}{base}  {ratio}")
    if args.json:
        results = {"latency": latency, "scrape": scrape, "memory": memory, "triggers": triggers}
        Path(args.json).write_text(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
