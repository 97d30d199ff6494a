"""Which ``Host`` a request may name: DNS rebinding lets a web page reach 127.0.0.1 under a
name of the attacker's; a browser then sends that name as ``Host``, and it is refused here.

Allowed: the address spad listens on, the address the connection came in on (a wildcard
listen serves each interface under its own address), loopback names and addresses, and the
names given with ``--allow-host``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port or brackets, in lower case."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:7070
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".") if value not in LOOPBACK_NAMES else value


def _is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostCheck:
    def __init__(self, listen_host: str, allowed: Iterable[str] = ()) -> None:
        self._names = {host_name(listen_host)} | {host_name(name) for name in allowed}

    def accepts(self, header: str | None, local_address: str) -> bool:
        """Whether a request naming ``header`` (None: an HTTP/1.0 request without one) may
        be served on a connection that arrived at ``local_address``."""
        if header is None:
            return True  # no name to rebind: a browser always sends one
        name = host_name(header)
        return _is_loopback(name) or name in self._names or name == host_name(local_address)
