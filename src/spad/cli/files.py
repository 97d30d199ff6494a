"""``spa_ctl file put|get|ls|rm``: copy files to and from the server's bin/, data/ and logs/."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NoReturn

import click

from spad.cli.client import Progress
from spad.cli.context import EXIT_USAGE, Context, fail, pass_ctx, show
from spad.cli.tables import printable
from spad.home import BIN

LARGE = 1024 * 1024


@contextlib.contextmanager
def progress_bar(label: str, total: int | None) -> Iterator[Progress | None]:
    """A progress bar on a terminal for large files; nothing otherwise."""
    if not sys.stderr.isatty() or (total is not None and total < LARGE):
        yield None
        return
    from rich.progress import Progress as Bar

    with Bar(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.advance(task, done)


@click.group()
def file() -> None:
    """Copy files to and from the server (areas: bin/, data/, logs/ read only)."""


@file.command()
@click.argument("local", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("remote")
@click.option(
    "--exec",
    "executable",
    is_flag=True,
    help="make it executable (for bin/; a local file with its execute bit is made so anyway)",
)
@pass_ctx
def put(ctx: Context, local: Path, remote: str, executable: bool) -> None:
    """Copy LOCAL to REMOTE (e.g. bin/tool, data/in/x.csv; a trailing / keeps the name).
    Into bin/ the local execute bit is kept, as scp -p does."""
    if remote.endswith("/") or "/" not in remote.strip("/"):
        remote = remote.rstrip("/") + "/" + local.name
    remote = sendable(remote)
    if remote.strip("/").startswith(f"{BIN}/") and os.access(local, os.X_OK):
        executable = True
    with progress_bar(f"put {local.name}", local.stat().st_size) as progress:
        result = ctx.guarded(ctx.client.put_file, local, remote, executable, progress)
    mode = " (executable)" if result["executable"] else ""
    shown = printable(result["path"])
    click.echo(f"{shown}: {result['size']} bytes, sha256 {result['sha256']}{mode}")


@file.command()
@click.argument("remote")
@click.argument("local", required=False)
@pass_ctx
def get(ctx: Context, remote: str, local: str | None) -> None:
    """Copy REMOTE to LOCAL (default: its name here; - for standard output)."""
    remote = sendable(remote)
    if local == "-":
        ctx.guarded(ctx.client.get_file, remote, writer(sys.stdout.buffer, "standard output"))
        return
    target = Path(local or Path(remote).name)
    if target.is_dir():
        target = target / Path(remote).name
    # A device or a pipe (/dev/null) is written into, as cp does: replaced, it would be a file.
    local_file = into if target.exists() and not target.is_file() else replacing
    with local_file(target) as sink, progress_bar(f"get {target.name}", None) as progress:
        digest = ctx.guarded(ctx.client.get_file, remote, writer(sink, str(target)), progress)
    click.echo(f"{printable(str(target))}: sha256 {digest}")


def sendable(remote: str) -> str:
    """``remote`` when a request can carry it: a name that is not UTF-8 (``file ls`` shows its
    bytes as ``\\xff``) cannot be sent, since spad takes only valid Unicode."""
    try:
        remote.encode()
    except UnicodeEncodeError:
        fail(
            f"{remote}: the name is not UTF-8, and spad takes only valid Unicode: "
            "rename it on the server's machine to copy or delete it",
            EXIT_USAGE,
        )
    return remote


def cannot_write(where: str, exc: OSError) -> NoReturn:
    """A local failure is the user's to fix (exit 2), named by its path: never an unexpected
    error, nor, from inside a download, the server's silence."""
    fail(f"cannot write {where}: {exc.strerror or exc}", EXIT_USAGE)


def writer(sink: IO[bytes], where: str) -> Callable[[bytes], object]:
    """``sink.write``, a failure of which ends the command here: the client would take its
    OSError (a full disk) for the network's."""

    def write(chunk: bytes) -> object:
        try:
            return sink.write(chunk)
        except BrokenPipeError:
            raise SystemExit(0) from None  # the reader went away (| head): nothing more to say
        except OSError as exc:
            cannot_write(where, exc)

    return write


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[IO[bytes]]:
    """A new file beside ``target`` that replaces it once whole (never half a download)."""
    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:  # no such folder, no permission
        cannot_write(str(target), exc)
    try:
        with os.fdopen(fd, "wb") as sink:
            yield sink
        os.replace(temporary, target)
    except OSError as exc:  # the last bytes flushed at close, the rename
        cannot_write(str(target), exc)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


@contextlib.contextmanager
def into(target: Path) -> Iterator[IO[bytes]]:
    """``target`` itself, written in place: a device or a pipe, which cannot be replaced."""
    try:
        with target.open("wb") as sink:
            yield sink
    except OSError as exc:
        cannot_write(str(target), exc)


@file.command(name="ls")
@click.argument("remote", default="")
@pass_ctx
def ls(ctx: Context, remote: str) -> None:
    """List a folder of the server (default: the areas)."""
    result = ctx.call("file_list", path=sendable(remote))
    if ctx.as_json:
        show(ctx, result)
        return
    for entry in result["entries"]:
        kind = {"folder": "d", "link": "l"}.get(entry["type"], "x" if entry["executable"] else "-")
        click.echo(f"{kind} {entry['size']:>12}  {printable(entry['path'])}")


@file.command(name="rm")
@click.argument("remote")
@pass_ctx
def rm(ctx: Context, remote: str) -> None:
    """Delete a file in bin/ or data/."""
    result = ctx.call("file_delete", path=sendable(remote))
    click.echo(f"deleted {printable(result['path'])}")
