"""What a name may be: projects, workflows, tasks, alarm sources and kinds. Names are also
file and folder names (logs, areas), hence the narrow alphabet."""

from __future__ import annotations

import re

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
