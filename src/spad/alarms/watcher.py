"""``python -m spad.alarms.watcher HOME``: the alarm watcher, a process of its own.

It reads every source after its cursor, applies the signals (:mod:`spad.alarms.logic`), writes
the journal and starts the ``on_open`` hook. A source that is away is retried with a back-off
(1 s doubling to 10 s) and read again from its cursor: nothing is lost, nothing applied twice.
Between reads it waits ``poll_interval``, or less when a PostgreSQL source announces rows.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spad import procs
from spad.alarms import journal, logic
from spad.alarms.config import AlarmsConfig, load
from spad.alarms.levels import WARNING
from spad.alarms.sources import BATCH, Source, SourceDown, SqliteSource, open_source
from spad.home import CONFIG, Home
from spad.store import alarms as store
from spad.store import runs
from spad.store.sqlite import connect, transaction

log = logging.getLogger("spad.alarms")
MAX_BACKOFF = 10.0


class Watcher:
    def __init__(self, home: Home, config: AlarmsConfig) -> None:
        self.home = home
        self.config = config
        self.conn = connect(home.db)
        self.sources: list[Source] = [SqliteSource("spad", str(home.db), "signals")]
        self.sources += [open_source(c) for c in config.sources]
        self._retry_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._hooks: list[tuple[subprocess.Popen[bytes], float]] = []

    def run_forever(self) -> None:
        while True:
            self.read_all()
            self._wait()
            self._reap_hooks()

    def read_all(self) -> None:
        for source in self.sources:
            if time.monotonic() < self._retry_at.get(source.origin, 0):
                continue
            try:
                while self._read(source) == BATCH:
                    pass
            except SourceDown as exc:
                self._down(source, str(exc))
            else:
                if self._backoff.pop(source.origin, None) is not None:
                    log.info("source %s is back", source.origin)
                    self._report(source, "clear", f"alarm source {source.origin} is back")

    def _read(self, source: Source) -> int:
        signals = source.fetch(store.cursor(self.conn, source.origin))
        if signals:
            events = logic.apply(self.conn, source.origin, signals, self.config.holdoff)
            journal.write(self.home.logs, events)
            for event in events:
                if event["event"] == "opened" and self.config.on_open:
                    self._hook(event)
        return len(signals)

    def _down(self, source: Source, reason: str) -> None:
        delay = min(self._backoff.get(source.origin, 0.5) * 2, MAX_BACKOFF)
        if source.origin not in self._backoff:
            log.warning("source %s is away (%s): retrying from its last row", source.origin, reason)
            self._report(
                source,
                WARNING,
                f"alarm source {source.origin} is away ({reason}): retrying from its last row; "
                "check its dsn and table in spad.toml",
            )
        self._backoff[source.origin] = delay
        self._retry_at[source.origin] = time.monotonic() + delay

    def _report(self, source: Source, severity: str, message: str) -> None:
        """A source that is away (or back) is itself an alarm of spad's, for ``spa_ctl
        alarms``; spad's own signals table cannot be away, so it is not reported this way."""
        if source.origin == "spad":
            return
        with transaction(self.conn):
            store.raise_signal(
                self.conn,
                runs.now(),
                None,
                "spad",
                f"source_away.{source.origin}",
                severity,
                message,
                None,
            )

    def _wait(self) -> None:
        listening = {fd: s for s in self.sources if (fd := s.fileno()) is not None}
        if not listening:
            time.sleep(self.config.poll_interval)  # a poller by nature: sources have no events
            return
        ready, _, _ = select.select(list(listening), [], [], self.config.poll_interval)
        for fd in ready:
            listening[fd].drain()

    def _hook(self, event: dict[str, object]) -> None:
        hook = self.home.executable(self.config.on_open or "")
        if hook is None:
            log.warning("on_open hook bin/%s is not an executable: skipped", self.config.on_open)
            return
        try:
            # The alarm goes in a file the hook reads as its stdin, not down a pipe: a pipe
            # holds 64 KiB, and writing more to a hook that reads late would stall the watcher.
            with tempfile.TemporaryFile() as stdin:
                stdin.write(json.dumps(event).encode())
                stdin.seek(0)
                process = subprocess.Popen(
                    [str(hook)],
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=self.home.data,
                    start_new_session=True,
                    env=dict(os.environ, SPA_HOME=str(self.home.root)),
                )
        except OSError as exc:
            log.warning("on_open hook failed to start: %s", exc)
            return
        self._hooks.append((process, time.monotonic() + self.config.hook_timeout))

    def _reap_hooks(self) -> None:
        alive = []
        for process, deadline in self._hooks:
            if process.poll() is None:
                if time.monotonic() > deadline:
                    log.warning(
                        "on_open hook bin/%s (pid %d) still ran after %gs: killed",
                        self.config.on_open,
                        process.pid,
                        self.config.hook_timeout,
                    )
                    procs.kill_group(process.pid)  # its own session: all of it
                alive.append((process, deadline))
        self._hooks = alive


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m spad.alarms.watcher HOME", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    home = Home(Path(args[0]).absolute())
    config = load(home.root / CONFIG)
    Watcher(home, config.alarms).run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
