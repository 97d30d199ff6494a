"""What every method and route works with. The server loads the methods at their first call,
so a server nobody talks to stays small."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from spad.home import Home
from spad.retention import Policy
from spad.server.readcache import ReadCache

if TYPE_CHECKING:
    from spad.server.runners import Runners


@dataclass
class Service:
    """What every method works with."""

    home: Home
    conn: sqlite3.Connection
    runners: Runners
    #: Makes sure the alarm watcher runs (it starts on the first signal, not before).
    wake_alarms: Callable[[], None] = lambda: None
    policy: Policy = field(default_factory=Policy)
    #: Answers of frequent reads, kept while the store is unchanged.
    reads: ReadCache = field(init=False)

    def __post_init__(self) -> None:
        self.reads = ReadCache(self.conn)
