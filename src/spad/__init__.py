"""spad: a workflow supervisor."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Looked up on first use: importlib.metadata costs every runner ~2 MB it never needs.
    if name == "__version__":
        from importlib.metadata import version

        return version("spad")
    raise AttributeError(f"module 'spad' has no attribute {name!r}")
