"""``logs/alarms.log``: one JSON object a line for every new alarm and transition."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from spad.home import ALARMS_LOG


def write(logs: Path, events: list[dict[str, Any]]) -> None:
    if not events:
        return
    text = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in events)
    # O_APPEND and one write per batch: the server and the watcher may both append.
    fd = os.open(logs / ALARMS_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
