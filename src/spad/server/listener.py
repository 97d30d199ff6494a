"""Accepting connections within a budget of descriptors.

asyncio's own accept loop takes up to ``backlog`` connections in one go, before any handler
runs, so a crowd that connects at once runs the process out of descriptors whatever cap the
server keeps afterwards; then every accept() fails and is logged, in a loop. Here each
connection is admitted (room made for it, or refused) before the next is accepted, a few
per turn of the loop, and running out of descriptors pauses accepting instead of spinning.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

from spad.server.shedlog import ShedLog

#: Connections the kernel queues before spad accepts them. asyncio's 100 is soon full when
#: many connect at once, and a connection the queue drops waits a second for its SYN to be
#: sent again: a legitimate client would wait behind a crowd of slow ones.
BACKLOG = 4096
#: Accepted per turn of the loop: the connections closed to make room give their
#: descriptors back at the next turn, so this bounds how far the count can overshoot.
ACCEPT_BATCH = 16
#: Out of descriptors: accept again after this.
PAUSE = 0.5
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    def __init__(
        self,
        admit: Callable[[], bool],
        adopt: Callable[[socket.socket], None],
        shed: ShedLog,
    ) -> None:
        #: Makes room for one more connection; False when there is none.
        self._admit = admit
        #: Takes an accepted socket over.
        self._adopt = adopt
        self._shed = shed
        self._sockets: list[socket.socket] = []

    async def open(self, host: str, port: int) -> int:
        """Listen on every address of ``host``; returns the port (``port`` 0 picks one)."""
        loop = asyncio.get_running_loop()
        # Called here, once, before anything is served: loop.getaddrinfo would start a thread
        # pool that stays for the server's life. An ASCII name goes as bytes: a str is
        # encoded with the idna codec, which loads unicodedata (0.3 MiB) for nothing.
        name = host.encode("ascii") if host.isascii() else host
        infos = socket.getaddrinfo(
            name or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and self._sockets:  # one free port for every address
                    chosen = self._sockets[0].getsockname()[1]
                    sock.bind((address[0], chosen, *address[2:]))
                else:
                    sock.bind(address)
                sock.listen(BACKLOG)
                sock.setblocking(False)
            except OSError:
                sock.close()
                self.close()
                raise
            self._sockets.append(sock)
            loop.add_reader(sock.fileno(), self._ready, sock)
        return int(self._sockets[0].getsockname()[1])

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []

    def _ready(self, listening: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._shed.count("not accepted: out of descriptors")
                    self._pause(listening)
                    return
                continue  # ECONNABORTED and the like: that client is gone
            if not self._admit():
                sock.close()
                self._shed.count("refused: every connection busy")
                continue
            sock.setblocking(False)
            self._adopt(sock)

    def _pause(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(listening.fileno())

        def resume() -> None:
            if listening in self._sockets:
                loop.add_reader(listening.fileno(), self._ready, listening)

        loop.call_later(PAUSE, resume)
