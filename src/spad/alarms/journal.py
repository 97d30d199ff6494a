"""``logs/alarms.log``: one JSON object a line for every new alarm and transition."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from spad.home import ALARMS_LOG

log = logging.getLogger("spad.alarms")


def write(logs: Path, events: list[dict[str, Any]]) -> None:
    """Append ``events``, already committed to spa.db. A journal that cannot be written (no
    room, a folder in its place) is said in spad's log, not raised: the change is made, and
    its caller must not be told it failed."""
    if not events:
        return
    text = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in events)
    try:
        # O_APPEND and one write per batch: the server and the watcher may both append.
        fd = os.open(logs / ALARMS_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        log.warning(
            "could not append %d line(s) to %s: %s (spa.db has them)",
            len(events),
            logs / ALARMS_LOG,
            exc.strerror or exc,
        )
