"""Where signals come from: spad's own ``signals`` table, or a table of another database.

Each source is read by its increasing id column, after the last id seen. A source whose
database is away raises :class:`SourceDown`; the watcher reconnects later and goes on from the
last id it recorded, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import sqlite3
from abc import ABC, abstractmethod
from typing import Any

import psycopg
from psycopg import sql

from spad.alarms.config import SourceConfig
from spad.alarms.logic import Signal

COLUMNS = ("source", "kind", "severity", "message", "value", "project")
OPTIONAL = frozenset({"value", "project"})
BATCH = 1000


class SourceDown(Exception):
    """The source's database cannot be read now."""


class Source(ABC):
    def __init__(self, origin: str) -> None:
        #: The cursor's name: ``spad`` or the configured source name.
        self.origin = origin

    @abstractmethod
    def fetch(self, after: int) -> list[Signal]:
        """Rows with id > ``after``, in id order (at most :data:`BATCH`)."""

    def fileno(self) -> int | None:
        """A descriptor that becomes readable when new rows are announced (LISTEN), or None."""
        return None

    def drain(self) -> None:  # noqa: B027 - most sources announce nothing
        """Consume announcements after :meth:`fileno` became readable."""

    @abstractmethod
    def close(self) -> None:
        """Drop the connection (reopened at the next fetch)."""


def _select(columns: list[str], table: str, id_column: str) -> str:
    return f"SELECT {id_column} AS id, {', '.join(columns)} FROM {table} WHERE {id_column} > ? "


class SqliteSource(Source):
    """A SQLite table: spad's own ``signals``, or an analysis database (``sqlite:///path``)."""

    def __init__(self, origin: str, path: str, table: str, id_column: str = "id") -> None:
        super().__init__(origin)
        self.path, self.table, self.id_column = path, table, id_column
        self._conn: sqlite3.Connection | None = None
        self._query = ""

    def fetch(self, after: int) -> list[Signal]:
        try:
            conn = self._connect()
            rows = conn.execute(self._query, (after, BATCH)).fetchall()
        except sqlite3.Error as exc:
            self.close()
            raise SourceDown(f"{self.origin}: {exc}") from None
        return [Signal(dict(row)) for row in rows]

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            conn.row_factory = sqlite3.Row
            names = [d[0] for d in conn.execute(f"SELECT * FROM {self.table} LIMIT 0").description]
            columns = _columns(self.origin, names)
            self._query = _select(columns, self.table, self.id_column) + (
                f"ORDER BY {self.id_column} LIMIT ?"
            )
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresSource(Source):
    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config.name)
        self.config = config
        self._conn: psycopg.Connection[Any] | None = None
        self._query: sql.Composed | None = None

    def fetch(self, after: int) -> list[Signal]:
        try:
            conn = self._connect()
            assert self._query is not None
            with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
                cursor.execute(self._query, (after, BATCH))
                rows = cursor.fetchall()
        except psycopg.Error as exc:
            self.close()
            raise SourceDown(f"{self.origin}: {str(exc).strip()}") from None
        return [Signal(row) for row in rows]

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            conn = psycopg.connect(
                self.config.dsn, autocommit=True, connect_timeout=5, application_name="spad alarms"
            )
            table = sql.Identifier(*self.config.table.split("."))
            ident = sql.Identifier(self.config.id_column)
            with conn.cursor() as cursor:
                cursor.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(table))
                names = [d.name for d in cursor.description or []]
            columns = [sql.Identifier(c) for c in _columns(self.origin, names)]
            self._query = sql.SQL(
                "SELECT {} AS id, {} FROM {} WHERE {} > %s ORDER BY {} LIMIT %s"
            ).format(ident, sql.SQL(", ").join(columns), table, ident, ident)
            if self.config.channel:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.config.channel)))
            self._conn = conn
        return self._conn

    def fileno(self) -> int | None:
        if self.config.channel is None or self._conn is None:
            return None
        return self._conn.fileno()

    def drain(self) -> None:
        if self._conn is None:
            return
        try:
            for _ in self._conn.notifies(timeout=0):
                pass
        except psycopg.Error:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None


def _columns(origin: str, present: list[str]) -> list[str]:
    missing = [c for c in COLUMNS if c not in present and c not in OPTIONAL]
    if missing:
        raise SourceDown(f"{origin}: the table has no column {', '.join(missing)}")
    return [c for c in COLUMNS if c in present]


def open_source(config: SourceConfig) -> Source:
    if config.dsn.startswith("sqlite:///"):
        return SqliteSource(
            config.name, config.dsn.removeprefix("sqlite:///"), config.table, config.id_column
        )
    return PostgresSource(config)
