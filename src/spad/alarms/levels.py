"""What an alarm can be, spelled once for the server, the watcher, the store and the CLI."""

from __future__ import annotations

#: A signal's severity; ``clear`` is no alarm's: it ends the alarm of its source and kind.
INFO, WARNING, CRITICAL, CLEAR = "info", "warning", "critical", "clear"
SEVERITIES = (INFO, WARNING, CRITICAL, CLEAR)
#: What an alarm's severity can be, and how they rank (a repeat raises, never lowers).
ALARM_SEVERITIES = (INFO, WARNING, CRITICAL)
RANK = {INFO: 0, WARNING: 1, CRITICAL: 2}

#: An alarm is ``open`` until a person acknowledges it, and ``cleared`` by a person or a
#: ``clear`` signal.
OPEN, ACKNOWLEDGED, CLEARED = "open", "acknowledged", "cleared"
STATES = (OPEN, ACKNOWLEDGED, CLEARED)
