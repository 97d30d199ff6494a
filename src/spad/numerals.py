"""Whole numbers as protocols and environments write them: ASCII digits, nothing else.

``str.isdigit`` takes "²" and "٣", which ``int`` refuses or reads differently, and ``int``
takes signs, spaces and underscores: neither alone says "a run of 0-9". Standard library only.
"""

from __future__ import annotations


def ascii_int(text: str) -> int | None:
    """``text`` as a whole number when it is one or more ASCII digits; None otherwise."""
    return int(text) if text.isascii() and text.isdigit() else None
