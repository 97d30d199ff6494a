"""What every spa_ctl command shares: the client, output, and failing with an exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from spad.client import Client, ServerError, Unreachable

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
T = TypeVar("T")


class Context:
    def __init__(self, client: Client, as_json: bool) -> None:
        self.client = client
        self.as_json = as_json

    def call(self, method: str, **params: Any) -> Any:
        return self.guarded(self.client.call, method, **params)

    def guarded(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a client action; the server's refusal or silence becomes the exit code."""
        try:
            return action(*args, **kwargs)
        except ServerError as exc:
            fail(exc.message, EXIT_REFUSED)
        except Unreachable as exc:
            fail(str(exc), EXIT_UNREACHABLE)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"spa_ctl: {message}", err=True)
    sys.exit(code)


pass_ctx = click.make_pass_decorator(Context)


def show(ctx: Context, result: Any, text: str | None = None) -> None:
    if ctx.as_json or text is None:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        click.echo(text)
