"""``spa_ctl file put|get|ls|rm``: copy files to and from the server's bin/, data/ and logs/."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from spad.cli.client import Progress
from spad.cli.context import Context, pass_ctx, show
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
    if remote.strip("/").startswith(f"{BIN}/") and os.access(local, os.X_OK):
        executable = True
    with progress_bar(f"put {local.name}", local.stat().st_size) as progress:
        result = ctx.guarded(ctx.client.put_file, local, remote, executable, progress)
    mode = " (executable)" if result["executable"] else ""
    click.echo(f"{result['path']}: {result['size']} bytes, sha256 {result['sha256']}{mode}")


@file.command()
@click.argument("remote")
@click.argument("local", required=False)
@pass_ctx
def get(ctx: Context, remote: str, local: str | None) -> None:
    """Copy REMOTE to LOCAL (default: its name here; - for standard output)."""
    if local == "-":
        ctx.guarded(ctx.client.get_file, remote, sys.stdout.buffer.write)
        return
    target = Path(local or Path(remote).name)
    if target.is_dir():
        target = target / Path(remote).name
    fd, temporary = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as sink, progress_bar(f"get {target.name}", None) as progress:
            digest = ctx.guarded(ctx.client.get_file, remote, sink.write, progress)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    click.echo(f"{target}: sha256 {digest}")


@file.command(name="ls")
@click.argument("remote", default="")
@pass_ctx
def ls(ctx: Context, remote: str) -> None:
    """List a folder of the server (default: the areas)."""
    result = ctx.call("file_list", path=remote)
    if ctx.as_json:
        show(ctx, result)
        return
    for entry in result["entries"]:
        kind = {"folder": "d", "link": "l"}.get(entry["type"], "x" if entry["executable"] else "-")
        click.echo(f"{kind} {entry['size']:>12}  {entry['path']}")


@file.command(name="rm")
@click.argument("remote")
@pass_ctx
def rm(ctx: Context, remote: str) -> None:
    """Delete a file in bin/ or data/."""
    result = ctx.call("file_delete", path=remote)
    click.echo(f"deleted {result['path']}")
