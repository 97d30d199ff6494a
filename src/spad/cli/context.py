"""What every spa_ctl command shares: the client, the options that may stand anywhere on the
line, output, and failing with an exit code."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from spad.cli.client import BadUrl, Client, ServerError, Unreachable
from spad.cli.tables import printable

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
#: Calls per JSON-RPC batch in :meth:`Context.call_each`: one request, not one each.
BATCH = 100
#: ``error.data.limit`` of a call the server did not make because its batch's replies reached
#: their budget (``spad.server.rpc.OVER_BUDGET_LIMIT``): it is made again on its own.
OVER_BUDGET = "batch_reply"
T = TypeVar("T")


class Context:
    """The global options (set wherever they stand on the line) and the client they make."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.token: str | None = None
        self.cacert: str | None = None
        self.as_json = False
        self.utc = False
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            try:
                self._client = Client(self.url, self.token, cacert=self.cacert)
            except BadUrl as exc:
                raise click.UsageError(str(exc)) from None
        return self._client

    def call(self, method: str, **params: Any) -> Any:
        return self.guarded(self.client.call, method, **params)

    def call_each(self, method: str, each: list[dict[str, Any]]) -> list[Any]:
        """``method`` with each of ``each`` (their results in that order), :data:`BATCH`
        calls to a request; a call left out for the batch's reply budget (large workflows)
        is made on its own; a refusal of any one ends the command as :meth:`call` does."""
        results = []
        for start in range(0, len(each), BATCH):
            part = each[start : start + BATCH]
            replies = self.guarded(self.client.batch, method, part)
            for params, reply in zip(part, replies, strict=True):
                error = reply.get("error")
                if error is None and "result" in reply:
                    results.append(reply["result"])
                elif error is None:
                    fail(f"the server's reply to {method} had no result: {reply}", EXIT_REFUSED)
                elif (error.get("data") or {}).get("limit") == OVER_BUDGET:
                    results.append(self.call(method, **params))
                else:
                    fail(ServerError.of(error).message, EXIT_REFUSED)
        return results

    def guarded(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a client action; the server's refusal or silence becomes the exit code."""
        try:
            return action(*args, **kwargs)
        except ServerError as exc:
            fail(exc.message, EXIT_REFUSED)
        except Unreachable as exc:
            fail(str(exc), EXIT_UNREACHABLE)


def fail(message: str, code: int) -> NoReturn:
    # Escaped: the server's message may quote a file name or a task's text, and stays one line.
    click.echo(f"spa_ctl: {printable(message)}", err=True)
    sys.exit(code)


def finite(_click_ctx: click.Context, param: click.Parameter, value: float | None) -> Any:
    """A number option's value, refused when it is nan or infinite (1e400 too): JSON has
    neither, and nan compares false with every deadline."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter("give a finite number (not nan, inf, 1e400)", param=param)
    return value


pass_ctx = click.make_pass_decorator(Context)


def show(ctx: Context, result: Any, text: str | None = None) -> None:
    if ctx.as_json or text is None:
        shown = json.dumps(result, indent=2, ensure_ascii=False)
        # A name that is not UTF-8 holds lone surrogates: sent as JSON's "\udcff", as spad does.
        click.echo(shown.encode("utf-8", "backslashreplace").decode())
    else:
        click.echo(text)


def _setter(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(click_ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value not in (None, False):  # not given here: it may stand elsewhere on the line
            setattr(click_ctx.ensure_object(Context), attribute, value)

    return store


def global_options() -> list[click.Option]:
    """``--json``, ``--url``, ``--token``, ``--cacert``, ``--utc``: accepted by the group and
    by every command, so that ``spa_ctl status -w wf1 --json`` is ``spa_ctl --json status -w
    wf1``. Fresh objects for each command (click keeps per-command state in them)."""

    def option(*decls: str, attribute: str, **kwargs: Any) -> click.Option:
        return click.Option(list(decls), expose_value=False, callback=_setter(attribute), **kwargs)

    return [
        option("--json", attribute="as_json", is_flag=True, help="print the raw JSON result"),
        option(
            "--url",
            attribute="url",
            metavar="URL",
            help="server URL (default: $SPA_URL, else the home's server, else "
            "http://127.0.0.1:7070)",
        ),
        option(
            "--token",
            attribute="token",
            metavar="TOKEN",
            help="API token (default: $SPA_TOKEN, else $SPA_HOME/token)",
        ),
        option(
            "--cacert",
            attribute="cacert",
            metavar="FILE",
            envvar="SPA_CACERT",
            help="CA file to trust for an https:// URL",
        ),
        option("--utc", attribute="utc", is_flag=True, help="show times in UTC, not local"),
    ]


def add_global_options(command: click.Command) -> None:
    """Give ``command`` and every command under it the global options."""
    command.params.extend(global_options())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_global_options(sub)
