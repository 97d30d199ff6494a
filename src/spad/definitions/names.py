"""What a name may be: projects, workflows, tasks, alarm sources and kinds. Names are also
file and folder names (logs, areas), hence the narrow alphabet."""

from __future__ import annotations

import re

from spad.home import ALARMS_LOG, RUNNERS_LOG

#: Always ``fullmatch``: ``$`` also matches before a final newline, and ``pr1\n`` would pass.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+@-]{0,99}")


def check_name(value: str) -> str:
    """``value``, or ValueError saying what a name may be."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 100 letters, digits or '_', '-', '.', '+', '@', "
            "and start with a letter, digit or '_' (names are also file names)"
        )
    return value


#: Files of spad's own in logs/, beside the projects' folders: no project may take their names.
RESERVED_PROJECTS = frozenset({RUNNERS_LOG, ALARMS_LOG})


def check_project_name(value: str) -> str:
    """:func:`check_name`, and not one of :data:`RESERVED_PROJECTS` (logs/NAME is the
    project's folder of logs)."""
    check_name(value)
    if value in RESERVED_PROJECTS:
        raise ValueError(f"{value!r} is the name of a file of spad's in logs/: choose another")
    return value
