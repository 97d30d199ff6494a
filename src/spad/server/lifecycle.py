"""The server's life: open the store, listen, recover the runs, serve until SIGTERM.

Imported by ``spad`` once the command line is read, so that a server without TLS can leave the
``ssl`` module out (see :func:`spad.server.main.without_ssl`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spad import cgroups, freed, provision
from spad import home as homes
from spad.areas import DEFAULT_MAX_FILE
from spad.errors import HomeError
from spad.retention import Policy
from spad.server import homelock
from spad.server.alarm_watcher import AlarmWatcher
from spad.server.app import Api
from spad.server.feed import EventFeed
from spad.server.hooks import ChangeHook
from spad.server.hosts import HostCheck
from spad.server.http import HttpServer, Limits
from spad.server.runners import Runners
from spad.server.service import Service
from spad.store import alarms as alarm_store
from spad.store.sqlite import SERVER_BUSY_TIMEOUT_MS, connect, damage, migrate, trouble

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("spad")


@dataclass(frozen=True)
class LiveConfig:
    """spad.toml's ``[hooks]`` and ``[metrics]``."""

    on_change: str | None = None
    hook_timeout: float = 10.0
    metrics_public: bool = False


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    allow_remote: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    max_file_size: int = DEFAULT_MAX_FILE
    max_connections: int = Limits.max_connections
    allow_hosts: tuple[str, ...] = ()


def open_store(home: homes.Home) -> sqlite3.Connection:
    """The server's connection, after ``PRAGMA quick_check``: a damaged file stops the start
    here, before the port is bound, with what to do (never a traceback half-way through)."""
    try:
        provision.make_store(home)
        conn = connect(home.db, SERVER_BUSY_TIMEOUT_MS)
        found = damage(conn)
        if found is None:
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and trouble(exc):
            raise HomeError(f"cannot open {home.db}: {exc}: try again") from None
        found = str(exc)
    except (RuntimeError, OSError) as exc:
        raise HomeError(f"cannot open {home.db}: {exc}") from None
    if found is not None:
        raise HomeError(
            f"{home.db} is damaged ({found}). Restore it from a backup, or move it aside "
            f"(mv {home.db} {home.db}.damaged) and start spad again with an empty state "
            "(definitions and run history are then gone)"
        )
    return conn


def tls_context(options: Options) -> ssl.SSLContext | None:
    if not options.tls_cert and not options.tls_key:
        return None
    if not (options.tls_cert and options.tls_key):
        raise HomeError("give both --tls-cert and --tls-key")
    import ssl  # only here: a server without TLS does without it

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise HomeError(f"cannot load the TLS certificate or key: {exc}") from None
    return context


async def serve(home: homes.Home, options: Options) -> None:
    context = tls_context(options)
    lock = homelock.hold(home)  # before the store and the port: a second server changes nothing
    has_sources, policy, live_config = read_config(home)
    conn = open_store(home)
    runners = Runners(home, conn, url="", policy=policy)
    watcher = AlarmWatcher(home)
    service = Service(home, conn, runners, wake_alarms=watcher.ensure_running, policy=policy)
    hosts = HostCheck(options.host, options.allow_hosts)
    limits = Limits(max_connections=descriptors_for(options.max_connections))
    feed = EventFeed(home.db)
    api = Api(service, options.max_file_size, hosts, feed, live_config.metrics_public)
    server = HttpServer(api, limits)
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
    runners.url = url = f"{scheme}://{url_host}:{bound_port}"
    homes.write_url(home, url)  # where tasks of adopted runners find us (their SPA_URL may be old)
    if context and options.tls_cert:
        # Tasks call back with spa_ctl: let them trust our certificate (self-signed or not).
        runners.task_env["SPA_CACERT"] = os.path.abspath(options.tls_cert)
    unprepared = cgroups.prepare()
    if unprepared:
        log.info(
            "spad cannot enforce memory_max here (%s): runs asking for it are refused", unprepared
        )
    feed.start()
    hooks = None
    if live_config.on_change:
        hooks = ChangeHook(home, live_config.on_change, live_config.hook_timeout)
        feed.listen(hooks.on_events)
    runners.recover()
    if has_sources or alarm_store.pending_signals(conn):
        watcher.ensure_running()
    freed.give_back()  # what the start's imports and recovery left in the heap
    log.info("serving %s with home %s", url, home.root)
    await until_signalled()
    log.info("stopping; runners go on and will be adopted at the next start")
    runners.close()
    watcher.close()
    await server.close()
    await feed.close()
    if hooks is not None:
        await hooks.close()
    conn.close()
    for fd in lock:
        os.close(fd)


async def until_signalled() -> None:
    """Until SIGTERM or SIGINT."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    await done.wait()


#: Descriptors the server needs besides its connections: the store, runners' pidfds, logs.
RESERVED_DESCRIPTORS = 128


def descriptors_for(connections: int) -> int:
    """Raise the open-file limit as far as allowed, so ``connections`` fit below it; return
    the cap that fits (lowered, with a warning, where the limit is too low). Out of
    descriptors, accept() fails in a loop and nobody is served."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitting = max(1, soft - RESERVED_DESCRIPTORS)
        log.warning(
            "open-file limit %d leaves room for %d connections, not %d: raise LimitNOFILE "
            "(ulimit -n) or lower --max-connections",
            soft,
            fitting,
            connections,
        )
        return fitting
    return connections


def read_config(home: homes.Home) -> tuple[bool, Policy, LiveConfig]:
    """Whether spad.toml names alarm sources, the retention policy and the live view's
    settings; a bad file stops the start, naming the field. (Read only when the file exists: a
    home without one never loads its validation.)"""
    path = home.root / homes.CONFIG
    if not path.exists():
        return False, Policy(), LiveConfig()
    from spad.alarms import config

    loaded = config.load(path)
    policy = Policy(loaded.retention.runs, loaded.retention.disk_min_free_bytes)
    live = LiveConfig(
        on_change=loaded.hooks.on_change,
        hook_timeout=loaded.hooks.timeout,
        metrics_public=loaded.metrics.public,
    )
    return bool(loaded.alarms.sources), policy, live
