"""``spad``: the server, in the foreground; ``spad token [--rotate]``: show or rotate the token."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sqlite3
import ssl
import sys
from dataclasses import dataclass

from spad import home as homes
from spad import provision
from spad.errors import HomeError
from spad.server.app import Api
from spad.server.files import DEFAULT_MAX_FILE
from spad.server.http import HttpServer
from spad.server.service import Service
from spad.server.supervisor import Supervisor
from spad.server.watcher_process import WatcherProcess
from spad.store import alarms as alarm_store
from spad.store import audit
from spad.store.sqlite import connect, migrate

log = logging.getLogger("spad")
DEFAULT_LISTEN = "127.0.0.1:7070"


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    allow_remote: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    max_file_size: int = DEFAULT_MAX_FILE


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN})")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spad",
        description="spad: the workflow supervisor server (runs in the foreground).",
    )
    parser.add_argument("--home", help="home folder (default: $SPA_HOME or /opt/spa)")
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=DEFAULT_LISTEN,
        help=f"address to serve on (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow listening on an address other than loopback (anyone who reaches it with "
        "the token can run every executable in bin/)",
    )
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument(
        "--max-file-size",
        type=int,
        default=DEFAULT_MAX_FILE,
        help=f"largest file 'spa_ctl file put' may copy in, in bytes (default {DEFAULT_MAX_FILE})",
    )
    commands = parser.add_subparsers(dest="command", metavar="{token}")
    token = commands.add_parser("token", help="print the API token; --rotate makes a new one")
    token.add_argument("--home", dest="token_home", help="home folder")
    token.add_argument(
        "--rotate", action="store_true", help="replace the token: the old one stops working at once"
    )
    return parser


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_store(home: homes.Home) -> sqlite3.Connection:
    try:
        conn = connect(home.db)
        migrate(conn)
    except (sqlite3.Error, RuntimeError) as exc:
        raise HomeError(f"cannot open {home.db}: {exc}") from None
    return conn


def tls_context(options: Options) -> ssl.SSLContext | None:
    if not options.tls_cert and not options.tls_key:
        return None
    if not (options.tls_cert and options.tls_key):
        raise HomeError("give both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise HomeError(f"cannot load the TLS certificate or key: {exc}") from None
    return context


async def serve(home: homes.Home, options: Options) -> None:
    context = tls_context(options)
    has_sources = configured_sources(home)
    conn = open_store(home)
    supervisor = Supervisor(home, conn, url="")
    watcher = WatcherProcess(home)
    service = Service(home, conn, supervisor, wake_alarms=watcher.ensure_running)
    server = HttpServer(Api(service, options.max_file_size))
    try:
        bound_port = await server.start(options.host, options.port, context)
    except OSError as exc:
        raise HomeError(
            f"cannot listen on {options.host}:{options.port} ({exc.strerror}): "
            "give another address with --listen HOST:PORT"
        ) from None
    # The port actually bound (``--listen HOST:0`` picks a free one); tasks call back here.
    wildcard = options.host in ("0.0.0.0", "", "::")
    url_host = "127.0.0.1" if wildcard else options.host
    if ":" in url_host:
        url_host = f"[{url_host}]"
    scheme = "https" if context else "http"
    supervisor.url = url = f"{scheme}://{url_host}:{bound_port}"
    if context and options.tls_cert:
        # Tasks call back with spa_ctl: let them trust our certificate (self-signed or not).
        supervisor.task_env["SPA_CACERT"] = os.path.abspath(options.tls_cert)
    supervisor.recover()
    if has_sources or alarm_store.pending_signals(conn):
        watcher.ensure_running()
    log.info("spad serving %s with home %s", url, home.root)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    await done.wait()
    log.info("spad stopping; runners go on and will be adopted at the next start")
    supervisor.close()
    watcher.close()
    await server.close()
    conn.close()


def configured_sources(home: homes.Home) -> bool:
    """Whether spad.toml names alarm sources; a bad file stops the start, naming the field.
    (Read only when the file exists: its validation would load pydantic at every start.)"""
    path = home.root / "spad.toml"
    if not path.exists():
        return False
    from spad.alarms import config

    return bool(config.load(path).alarms.sources)


def check_exposure(options: Options) -> None:
    if is_loopback(options.host):
        return
    if not options.allow_remote:
        raise HomeError(
            f"listening on {options.host} exposes spad beyond this machine: add --allow-remote "
            "if you mean it (and --tls-cert/--tls-key, so the token does not cross in clear)"
        )
    print(
        f"spad: warning: listening on {options.host} ({socket.gethostname()}): whoever reaches "
        "it with the token can run every executable in bin/"
        + ("" if options.tls_cert else "; without TLS the token crosses the network in clear"),
        file=sys.stderr,
    )


def token_command(args: argparse.Namespace) -> int:
    home = provision.prepare(homes.resolve(args.token_home or args.home))
    if args.rotate:
        provision.write_token(home, secrets.token_urlsafe(32))
        conn = open_store(home)
        audit.record(conn, "token_rotate", "local", "ok")
        conn.close()
    print(home.token())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "token":
            return token_command(args)
        options = Options(
            host=args.listen[0],
            port=args.listen[1],
            allow_remote=args.allow_remote,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            max_file_size=args.max_file_size,
        )
        check_exposure(options)
        home = provision.prepare(homes.resolve(args.home))
        asyncio.run(serve(home, options))
    except HomeError as exc:
        print(f"spad: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
