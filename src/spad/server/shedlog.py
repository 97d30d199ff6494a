"""What the server closes or refuses under load, logged at most once a second: a thousand
slow clients must not turn into a thousand log lines (or a full disk)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

INTERVAL = 1.0


class ShedLog:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._counts: Counter[str] = Counter()
        self._flush: asyncio.TimerHandle | None = None

    def count(self, what: str) -> None:
        self._counts[what] += 1
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(INTERVAL, self.flush)

    def flush(self) -> None:
        self._flush = None
        if self._counts:
            summary = ", ".join(f"{n} {what}" for what, n in sorted(self._counts.items()))
            self._log.warning("connections in the last second: %s", summary)
            self._counts.clear()
