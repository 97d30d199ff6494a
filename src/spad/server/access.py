"""Who may do what: the token may do everything; the read-only token may only read.

The read-only token lives in ``$SPA_HOME/token-read-only`` (made by ``spad token
--read-only``); like the token, it is re-read when its file changes, so it works at once.
With it, every method that changes something is refused as ``forbidden`` (and audited), as
is every write of a file; reads, ``/events``, ``/metrics`` and the dashboard work.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from spad.errors import Forbidden
from spad.home import READ_ONLY_TOKEN
from spad.server.rpc import Method

READ_ONLY_FILE = READ_ONLY_TOKEN


def _refuse(_service: Any, _params: Any) -> None:
    raise Forbidden("this token may only read: changes need the token in $SPA_HOME/token")


@functools.cache
def _read_only(methods: tuple[tuple[str, Method], ...]) -> dict[str, Method]:
    return {
        name: Method(_refuse, None, mutating=True) if method.mutating else method
        for name, method in methods
    }


def read_only_methods(methods: Mapping[str, Method]) -> dict[str, Method]:
    """``methods`` with every mutating one replaced by a refusal (same names, so a caller is
    told ``forbidden``, not ``method not found``)."""
    return _read_only(tuple(methods.items()))
