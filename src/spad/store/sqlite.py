"""The SQLite file: connection settings and numbered schema migrations.

Standard library only (the runner opens the store too). WAL lets the server read while runners
write; ``busy_timeout`` makes a writer wait for another instead of failing; ``synchronous=NORMAL``
in WAL mode never corrupts the file on power loss (at worst the last commits are lost).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

TYPE_CHECKING = False  # typing itself is not imported on the runner's path
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeVar

    C = TypeVar("C", bound=sqlite3.Connection)

    class Result(Protocol):
        """What a statement gives back: a cursor, or a runner's write kept for its turn's end."""

        @property
        def rowcount(self) -> int: ...
        @property
        def lastrowid(self) -> int | None: ...
        def fetchone(self) -> Any: ...
        def fetchall(self) -> list[Any]: ...
        def __iter__(self) -> Iterator[Any]: ...

    class Statements(Protocol):
        """What the store's queries ask of a connection: a ``sqlite3.Connection`` (the server's),
        or the runner's :class:`~spad.store.turns.RunnerStore`."""

        def execute(self, sql: str, parameters: Any = ..., /) -> Result: ...


#: How long a runner's (or the watcher's) write waits for another writer before it is refused.
BUSY_TIMEOUT_MS = 10_000
#: The server answers requests: a write that cannot have the lock within this says "busy".
SERVER_BUSY_TIMEOUT_MS = 2_000

#: What :func:`trouble` calls the store's passing refusals.
FULL, BUSY = "disk full", "database busy"
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13

#: The event journal keeps at least this many of the newest events (``Last-Event-ID`` resumes
#: without loss within them).
EVENTS_KEPT = 10_000
#: The audit trail keeps this many of its newest rows: failed sign-ins come one row per client
#: address and minute, and anonymous clients with ever new addresses would grow it without end.
AUDIT_KEPT = 100_000

_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_RUN_NAMES = (
    "FROM runs r JOIN workflows w ON w.id = r.workflow_id JOIN projects p ON p.id = w.project_id"
)
_WORKFLOW_EVENT = (
    "SELECT json_object('project', p.name, 'workflow', w.name, 'run_id', NEW.id,"
    f" 'status', NEW.status, 'attempt', NULL, 'exit_code', NULL, 'at', {_NOW})"
    f" {_RUN_NAMES} WHERE r.id = NEW.id"
)
_TASK_EVENT = (
    "SELECT json_object('project', p.name, 'workflow', w.name, 'run_id', NEW.run_id,"
    " 'task', NEW.name, 'status', NEW.status, 'attempt', NEW.attempt,"
    f" 'exit_code', NEW.exit_code, 'pid', NEW.pid, 'at', {_NOW}) {_RUN_NAMES}"
    " WHERE r.id = NEW.run_id"
)
#: From schema 12 on: the names are the run's own (kept in its rows when it is created), so a
#: trigger reads ``NEW`` alone; a join of three tables compiled into every statement that
#: writes a status was a third of a runner's SQLite time at its stop.
_FLAT_RUN_EVENT = (
    "SELECT json_object('project', NEW.project_name, 'workflow', NEW.workflow_name,"
    " 'run_id', NEW.id, 'status', NEW.status, 'attempt', NULL, 'exit_code', NULL,"
    f" 'at', {_NOW})"
)
_FLAT_TASK_EVENT = (
    "SELECT json_object('project', NEW.project_name, 'workflow', NEW.workflow_name,"
    " 'run_id', NEW.run_id, 'task', NEW.name, 'status', NEW.status, 'attempt', NEW.attempt,"
    f" 'exit_code', NEW.exit_code, 'pid', NEW.pid, 'at', {_NOW})"
)
_FLAT_REASON = _FLAT_TASK_EVENT.replace(
    "'pid', NEW.pid,", "'pid', NEW.pid, 'reason', NEW.end_reason,"
)
#: From schema 8 on: a task's events also say why an attempt ended, where spad knows more than
#: its status does ("memory limit").
_TASK_EVENT_REASON = _TASK_EVENT.replace(
    "'pid', NEW.pid,", "'pid', NEW.pid, 'reason', NEW.end_reason,"
)
_ALARM_EVENT = (
    "SELECT json_object('id', NEW.id, 'project', NEW.project, 'source', NEW.source,"
    " 'kind', NEW.kind, 'severity', NEW.severity, 'state', NEW.state, 'count', NEW.count,"
    " 'message', NEW.message, 'value', NEW.value, 'first_seen', NEW.first_seen,"
    " 'last_seen', NEW.last_seen, 'acknowledged_at', NEW.acknowledged_at,"
    f" 'cleared_at', NEW.cleared_at, 'status', NEW.state, 'at', {_NOW})"
)


def _event_trigger(name: str, on: str, table: str, kind: str, data: str, cut: bool = True) -> str:
    """A trigger that journals ``kind`` events: on every insert, or on an update that changed
    the watched columns (a write of the same status is no transition). Per row and per
    statement, so two statuses written in one transaction are two events. ``cut``: it also
    drops what is older than the newest EVENTS_KEPT (from migration 12 on, the transition
    owner does, once a transition: see ``events.keep_newest``)."""
    changed = ""
    if on.startswith("UPDATE OF"):
        columns = on.removeprefix("UPDATE OF").split(",")
        changed = "WHEN " + " OR ".join(f"NEW.{c.strip()} IS NOT OLD.{c.strip()}" for c in columns)
    cutting = f"DELETE FROM events WHERE id <= last_insert_rowid() - {EVENTS_KEPT};" if cut else ""
    return f"""
    CREATE TRIGGER events_{name} AFTER {on} ON {table} {changed}
    BEGIN
        INSERT INTO events (kind, data) {data.replace("SELECT", f"SELECT '{kind}',", 1)};
        {cutting}
    END;"""


#: Each entry moves the schema from version N to N+1. Never edit one that has shipped: add one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        ext_id INTEGER NOT NULL,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE workflows (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        ext_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        on_failure TEXT NOT NULL DEFAULT 'stop',
        UNIQUE (project_id, name)
    );
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
        ext_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        place INTEGER NOT NULL,
        exec TEXT NOT NULL,
        function TEXT NOT NULL,
        params TEXT NOT NULL,
        retries INTEGER NOT NULL,
        retry_delay REAL NOT NULL,
        stop_signal TEXT NOT NULL,
        stop_timeout REAL NOT NULL,
        env TEXT NOT NULL,
        cwd TEXT NOT NULL,
        UNIQUE (workflow_id, name)
    );
    -- One row per execution of a workflow. ``finished`` = 1 when its task list ended by itself
    -- or a stop ended it; anything else (power loss, crash, hard kill) leaves it 0 to be resumed.
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        workflow_id INTEGER NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        only_task TEXT,
        from_task TEXT,
        finished INTEGER NOT NULL DEFAULT 0,
        stop_request TEXT,
        runner_pid INTEGER,
        runner_identity TEXT,
        resumed_from INTEGER,
        started_at TEXT NOT NULL,
        ended_at TEXT
    );
    CREATE INDEX runs_by_workflow ON runs (workflow_id, id);
    CREATE INDEX runs_unfinished ON runs (finished) WHERE finished = 0;
    -- The tasks of a run, copied from the definition when the run starts.
    CREATE TABLE run_tasks (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        place INTEGER NOT NULL,
        name TEXT NOT NULL,
        exec TEXT NOT NULL,
        function TEXT NOT NULL,
        params TEXT NOT NULL,
        retries INTEGER NOT NULL,
        retry_delay REAL NOT NULL,
        stop_signal TEXT NOT NULL,
        stop_timeout REAL NOT NULL,
        env TEXT NOT NULL,
        cwd TEXT NOT NULL,
        status TEXT NOT NULL,
        pid INTEGER,
        pid_identity TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        exit_code INTEGER,
        started_at TEXT,
        ended_at TEXT,
        log_path TEXT,
        PRIMARY KEY (run_id, name)
    );
    """,
    # 2: every mutating call, for `spa_ctl audit`.
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        method TEXT NOT NULL,
        client TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT
    );
    """,
    # 3: alarms. Signals raised through spad; alarms with their history; where each source's
    # reading stopped (advanced in the same transaction as the alarms it produced).
    """
    CREATE TABLE signals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        project TEXT,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        value REAL
    );
    CREATE TABLE alarms (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        message TEXT NOT NULL,
        value REAL,
        origin TEXT NOT NULL,
        acknowledged_at TEXT,
        cleared_at TEXT,
        logged_at TEXT NOT NULL
    );
    CREATE INDEX alarms_by_key ON alarms (project, source, kind, id);
    CREATE TABLE alarm_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alarm_id INTEGER NOT NULL REFERENCES alarms(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE alarm_cursors (
        origin TEXT PRIMARY KEY,
        last_id INTEGER NOT NULL
    );
    """,
    # 4: when a task entered its status, and when a task in ``rerun`` starts again. A trigger
    # keeps ``since`` for every writer (runner, server) without a write of its own.
    """
    ALTER TABLE run_tasks ADD COLUMN since TEXT;
    ALTER TABLE run_tasks ADD COLUMN next_attempt_at TEXT;
    CREATE TRIGGER run_tasks_since AFTER UPDATE OF status ON run_tasks
    WHEN NEW.status IS NOT OLD.status
    BEGIN
        UPDATE run_tasks SET since = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
            next_attempt_at = CASE WHEN NEW.status = 'rerun' THEN NEW.next_attempt_at END
        WHERE run_id = NEW.run_id AND name = NEW.name;
    END;
    """,
    # 5: time limits and memory of a task; when a running task last said it is alive.
    """
    ALTER TABLE tasks ADD COLUMN timeout REAL NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN idle_timeout REAL NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN memory_max INTEGER;
    ALTER TABLE run_tasks ADD COLUMN timeout REAL NOT NULL DEFAULT 0;
    ALTER TABLE run_tasks ADD COLUMN idle_timeout REAL NOT NULL DEFAULT 0;
    ALTER TABLE run_tasks ADD COLUMN memory_max INTEGER;
    ALTER TABLE run_tasks ADD COLUMN heartbeat_at REAL;
    """,
    # 6: the event journal of the live view. Triggers append a row for every status a run, a
    # task of a run or an alarm takes, in the transaction that wrote it, whoever wrote it
    # (server, runner, alarm watcher). Only the newest EVENTS_KEPT rows are kept.
    f"""
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    {_event_trigger("run_started", "INSERT", "runs", "workflow", _WORKFLOW_EVENT)}
    {_event_trigger("run_status", "UPDATE OF status", "runs", "workflow", _WORKFLOW_EVENT)}
    {_event_trigger("task_added", "INSERT", "run_tasks", "task", _TASK_EVENT)}
    {_event_trigger("task_status", "UPDATE OF status", "run_tasks", "task", _TASK_EVENT)}
    {_event_trigger("alarm_opened", "INSERT", "alarms", "alarm", _ALARM_EVENT)}
    {_event_trigger("alarm_state", "UPDATE OF state, severity", "alarms", "alarm", _ALARM_EVENT)}
    """,
    # 7: executors. A workflow's (``local`` or ``slurm``); a task's own (NULL: the workflow's)
    # and its ``slurm_args``; in a run, the executor each task got and its Slurm job id.
    """
    ALTER TABLE workflows ADD COLUMN executor TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE tasks ADD COLUMN executor TEXT;
    ALTER TABLE tasks ADD COLUMN slurm_args TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE run_tasks ADD COLUMN executor TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE run_tasks ADD COLUMN slurm_args TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE run_tasks ADD COLUMN job TEXT;
    """,
    # 8: why an attempt ended, where its status does not say it all (``memory limit``), in the
    # row and in its events.
    f"""
    ALTER TABLE run_tasks ADD COLUMN end_reason TEXT;
    DROP TRIGGER events_task_status;
    {_event_trigger("task_status", "UPDATE OF status", "run_tasks", "task", _TASK_EVENT_REASON)}
    """,
    # 9: a workflow's unfinished run found by the workflow, not among all unfinished runs
    # (each ``run`` and ``stop`` read a thousand rows with a thousand workflows running).
    """
    CREATE INDEX runs_unfinished_by_workflow ON runs (workflow_id) WHERE finished = 0;
    """,
    # 10: the audit trail keeps its newest AUDIT_KEPT rows.
    f"""
    CREATE TRIGGER audit_kept AFTER INSERT ON audit
    BEGIN
        DELETE FROM audit WHERE id <= NEW.id - {AUDIT_KEPT};
    END;
    """,
    # 11: a ``restart`` asked of a run, kept with the run so that a restart of spad itself
    # before the run ended still starts the workflow again.
    """
    ALTER TABLE runs ADD COLUMN then_restart INTEGER NOT NULL DEFAULT 0;
    """,
    # 12: the journal's triggers made cheaper for every writer (W8's stop of 1,000: 1.75-1.83
    # s against 1.97-2.34): a run's project and workflow names kept in its rows, so the
    # events are built from NEW alone, and the journal cut once a transition by the
    # transition owner rather than once an event by each trigger (``events.keep_newest``).
    f"""
    DROP TRIGGER events_run_started;
    DROP TRIGGER events_run_status;
    DROP TRIGGER events_task_added;
    DROP TRIGGER events_task_status;
    ALTER TABLE runs ADD COLUMN project_name TEXT;
    ALTER TABLE runs ADD COLUMN workflow_name TEXT;
    ALTER TABLE run_tasks ADD COLUMN project_name TEXT;
    ALTER TABLE run_tasks ADD COLUMN workflow_name TEXT;
    UPDATE runs SET
        project_name = (SELECT p.name FROM workflows w JOIN projects p ON p.id = w.project_id
                        WHERE w.id = runs.workflow_id),
        workflow_name = (SELECT name FROM workflows WHERE id = runs.workflow_id);
    UPDATE run_tasks SET
        project_name = (SELECT project_name FROM runs WHERE id = run_tasks.run_id),
        workflow_name = (SELECT workflow_name FROM runs WHERE id = run_tasks.run_id);
    {_event_trigger("run_started", "INSERT", "runs", "workflow", _FLAT_RUN_EVENT, False)}
    {_event_trigger("run_status", "UPDATE OF status", "runs", "workflow", _FLAT_RUN_EVENT, False)}
    {_event_trigger("task_added", "INSERT", "run_tasks", "task", _FLAT_TASK_EVENT, False)}
    {_event_trigger("task_status", "UPDATE OF status", "run_tasks", "task", _FLAT_REASON, False)}
    """,
)


def connect(
    path: str | os.PathLike[str],
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    cache_kib: int | None = None,
) -> sqlite3.Connection:
    """Open the store with the settings every process of spad uses (``cache_kib``: a page
    cache smaller than SQLite's default 2 MiB)."""
    return connect_as(sqlite3.Connection, path, busy_timeout_ms, cache_kib)


def connect_as(
    factory: type[C],
    path: str | os.PathLike[str],
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    cache_kib: int | None = None,
    wal: bool = True,
) -> C:
    """:func:`connect`, with a connection class of the caller's. ``wal=False`` leaves the
    journal mode as the file has it (WAL is kept in the file: a runner opening the server's
    store need not ask again, and saves a lock round at each open)."""
    # ``timeout`` is SQLite's busy timeout: no PRAGMA needed for it.
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, factory=factory
    )
    conn.row_factory = sqlite3.Row
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    if cache_kib is not None:
        conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
    return conn


def trouble(exc: sqlite3.Error) -> str | None:
    """:data:`FULL` or :data:`BUSY` when ``exc`` is the store refusing a write for now (the
    disk is full, another process holds the write lock), so that waiting and writing again
    can succeed; None for anything else."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == _SQLITE_FULL:
        return FULL
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return BUSY
    return None


def damage(conn: sqlite3.Connection) -> str | None:
    """What ``PRAGMA quick_check`` finds wrong with the file, or None when it is sound.

    Reading a damaged page may raise instead of reporting: that is damage too."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and trouble(exc):
            raise
        return str(exc)
    found = [str(row[0]) for row in rows]
    return None if found == ["ok"] else "; ".join(found[:3])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date, one migration per transaction; returns the version reached."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"spa.db has schema version {version}, newer than this spad knows "
            f"({len(MIGRATIONS)}): upgrade spad"
        )
    for number in range(version, len(MIGRATIONS)):
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE; {MIGRATIONS[number]};"
                f" PRAGMA user_version = {number + 1}; COMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


#: The pauses between tries for the write lock: the first, and the longest it doubles up to
#: while the wait is short; after :data:`SHORT_WAIT` seconds the lock is held for long (a
#: backup, a shell left in a transaction) and the pauses double on up to :data:`LONG_PAUSE`, so
#: that a thousand waiting runners do not poll it.
FIRST_PAUSE, LONGEST_PAUSE = 0.0001, 0.002
SHORT_WAIT, LONG_PAUSE = 0.05, 0.1


def begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``: the write lock, tried again after pauses of 0.1 ms doubling up to
    2 ms (then, past 50 ms of waiting, up to 100 ms), for as long as the connection's busy
    timeout; then its refusal.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... ms between tries, far longer than a
    writer usually holds the lock here (a runner's turn commits in about 0.2 ms). With a thousand
    runners writing at once, writers slept while the lock was free and the CPU idled: during
    W8's stop of 1,000 the server slept 533 times in SQLite's handler and both cores were a
    quarter idle (``strace -e nanosleep``, ``/proc/stat``)."""
    budget_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute("PRAGMA busy_timeout = 0")  # a refusal at once: the pauses are ours
    try:
        started = time.monotonic()
        pause = FIRST_PAUSE
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                waited = time.monotonic() - started
                if trouble(exc) != BUSY or waited >= budget_ms / 1000:
                    raise
            # Half to one and a half of the pause: writers that failed together retry apart.
            time.sleep(pause * (0.5 + time.perf_counter_ns() % 1000 / 1000))
            pause = min(pause * 2, LONGEST_PAUSE if waited < SHORT_WAIT else LONG_PAUSE)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {budget_ms}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One atomic write: ``BEGIN IMMEDIATE`` takes the write lock up front, so two writers
    never deadlock halfway; any exception rolls everything back."""
    begin_immediate(conn)
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # a full disk may have rolled it back already
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
