"""``spad``: the server, in the foreground; ``spad token [--rotate]``: show or rotate the token."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from spad import home as homes
from spad import provision
from spad.areas import DEFAULT_MAX_FILE
from spad.errors import HomeError
from spad.numerals import ascii_int
from spad.store import audit

if TYPE_CHECKING:
    from spad.server.lifecycle import Options

DEFAULT_LISTEN = "127.0.0.1:7070"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``; an IPv6 host in brackets (``[::1]:7070``), as in a URL."""
    host, sep, port_text = text.rpartition(":")
    port = ascii_int(port_text)
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if (
        not sep
        or port is None
        or not 0 <= port <= 65535
        or "[" in host
        or "]" in host
        or (":" in host and not bracketed)
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT (e.g. {DEFAULT_LISTEN}, or [::1]:7070 for IPv6)"
        )
    return host or "127.0.0.1", port


class PrintVersion(argparse.Action):
    """``--version``: read from the package's metadata only when asked, not at every start."""

    def __init__(self, option_strings: list[str], dest: str, **_: object) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, help="print the version")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        import spad

        print(f"spad {spad.__version__}")
        parser.exit()


def positive(text: str) -> int:
    number = ascii_int(text)
    if number is None or number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's own formatter, given the width it would ask ``shutil`` for: argparse makes
    one for every option it is given, and shutil (with the bz2 and lzma it loads) would then
    stay in the server's memory for nothing (0.3 MiB)."""
    columns = 80
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    return argparse.HelpFormatter(prog, width=(columns if columns > 0 else 80) - 2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spad",
        description="spad: the workflow supervisor server (runs in the foreground).",
        formatter_class=help_formatter,
    )
    parser.add_argument("--version", action=PrintVersion)
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
        type=positive,
        default=DEFAULT_MAX_FILE,
        help=f"largest file 'spa_ctl file put' may copy in, in bytes (default {DEFAULT_MAX_FILE})",
    )
    parser.add_argument(
        "--max-connections",
        type=positive,
        default=256,
        help="connections at once (default 256); at the cap the slowest or idlest is closed",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name clients use for this server (its Host header), besides the listen "
        "address and loopback; repeat for several (a request naming another Host gets 403)",
    )
    commands = parser.add_subparsers(dest="command", metavar="{token}")
    token = commands.add_parser(
        "token",
        help="print the API token; --rotate makes a new one",
        formatter_class=help_formatter,
    )
    token.add_argument("--home", dest="token_home", help="home folder")
    token.add_argument(
        "--rotate", action="store_true", help="replace the token: the old one stops working at once"
    )
    token.add_argument(
        "--read-only",
        action="store_true",
        help="the read-only token instead (made at first use): it may read, never change",
    )
    return parser


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def without_ssl() -> None:
    """asyncio imports ``ssl`` whether TLS is used or not; a server without TLS leaves it out,
    which keeps 1.6 MiB (libssl and the module) out of an idle server. A None in
    ``sys.modules`` makes ``import ssl`` fail, which asyncio and http.client are written for."""
    if "ssl" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]


def token_command(args: argparse.Namespace) -> int:
    home = provision.prepare(homes.resolve(args.token_home or args.home))
    if args.read_only:
        return read_only_token(home, args.rotate)
    if args.rotate:
        new_token(home, None, "token_rotate")
    provision.check_token(home)
    print(home.token())
    return 0


def read_only_token(home: homes.Home, rotate: bool) -> int:
    from spad.server.access import READ_ONLY_FILE

    path = home.root / READ_ONLY_FILE
    if rotate or not path.exists():
        new_token(home, path, "token_rotate_read_only" if rotate else "token_read_only")
    print(path.read_text().strip())
    return 0


def new_token(home: homes.Home, path: Path | None, method: str) -> None:
    """A new token (at ``path``: the read-only one), in the audit trail as ``method`` whether
    it was made or refused (a ``.new`` file left by an interrupted rotation)."""
    try:
        provision.write_token(home, provision.new_token(), path)
    except HomeError as exc:
        _record(home, method, f"error: {exc}")
        raise
    _record(home, method, "ok")


def _record(home: homes.Home, method: str, outcome: str) -> None:
    from spad.server.lifecycle import open_store

    conn = open_store(home)
    try:
        audit.record(conn, method, "local", outcome)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    # Nothing spad makes (the home's folders, spa.db's files, url) may be writable by group or
    # others, whatever umask it was started with: bin/ holds what runs as spad's user. Its
    # tasks inherit it, as under systemd's default UMask=0022.
    os.umask(os.umask(0o022) | 0o022)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "token":
            return token_command(args)
        if not (args.tls_cert or args.tls_key):
            without_ssl()
        import asyncio

        from spad.server.lifecycle import Options, serve

        options = Options(
            host=args.listen[0],
            port=args.listen[1],
            allow_remote=args.allow_remote,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            max_file_size=args.max_file_size,
            max_connections=args.max_connections,
            allow_hosts=tuple(args.allow_host),
        )
        check_exposure(options)
        home = provision.prepare(homes.resolve(args.home))
        provision.check_token(home)
        asyncio.run(serve(home, options))
    except HomeError as exc:
        print(f"spad: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
