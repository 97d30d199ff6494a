"""``spad``: the server. ``spad [--home DIR] [--listen HOST:PORT]`` runs it in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import sys

from aiohttp import web

from spad import home as homes
from spad import provision
from spad.errors import HomeError
from spad.server.app import make_app
from spad.server.methods import Service
from spad.server.supervisor import Supervisor
from spad.store.sqlite import connect, migrate

log = logging.getLogger("spad")
DEFAULT_LISTEN = "127.0.0.1:7070"


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spad", description="spad: the workflow supervisor server (runs in the foreground)."
    )
    parser.add_argument("--home", help="home folder (default: $SPA_HOME or /opt/spa)")
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=DEFAULT_LISTEN,
        help=f"address to serve JSON-RPC on (default {DEFAULT_LISTEN})",
    )
    return parser


def open_store(home: homes.Home) -> sqlite3.Connection:
    try:
        conn = connect(home.db)
        migrate(conn)
    except (sqlite3.Error, RuntimeError) as exc:
        raise HomeError(f"cannot open {home.db}: {exc}") from None
    return conn


async def serve(home: homes.Home, host: str, port: int) -> None:
    conn = open_store(home)
    supervisor = Supervisor(home, conn, url="")
    runner = web.AppRunner(make_app(Service(home, conn, supervisor)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise HomeError(
            f"cannot listen on {host}:{port} ({exc.strerror}): "
            "give another address with --listen HOST:PORT"
        ) from None
    # The port actually bound (``--listen HOST:0`` picks a free one); tasks call back here.
    bound_port = runner.addresses[0][1]
    url_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    supervisor.url = url = f"http://{url_host}:{bound_port}"
    supervisor.recover()
    log.info("spad serving %s with home %s", url, home.root)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    await done.wait()
    log.info("spad stopping; runners go on and will be adopted at the next start")
    supervisor.close()
    await runner.cleanup()
    conn.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        home = provision.prepare(homes.resolve(args.home))
        asyncio.run(serve(home, *args.listen))
    except HomeError as exc:
        print(f"spad: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
