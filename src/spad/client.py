"""The JSON-RPC client spa_ctl uses. Standard library only, so a task calling ``spa_ctl`` pays
little to start it."""

from __future__ import annotations

import itertools
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:7070"


class ServerError(Exception):
    """The server refused the request; the message is its own."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Unreachable(Exception):
    """No server answered at the URL."""


def find_token(explicit: str | None) -> str | None:
    """``--token``, then ``SPA_TOKEN``, then ``$SPA_HOME/token`` (default home /opt/spa)."""
    if explicit:
        return explicit
    if os.environ.get("SPA_TOKEN"):
        return os.environ["SPA_TOKEN"]
    path = Path(os.environ.get("SPA_HOME") or "/opt/spa") / "token"
    try:
        return path.read_text().strip()
    except OSError:
        return None


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60):
        self.url = (url or os.environ.get("SPA_URL") or DEFAULT_URL).rstrip("/")
        self.token = find_token(token)
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> Any:
        body = {
            "jsonrpc": "2.0",
            "method": method,
            "id": next(self._ids),
            "params": {k: v for k, v in params.items() if v is not None},
        }
        reply = self._post(json.dumps(body).encode())
        if "error" in reply:
            error = reply["error"]
            raise ServerError(error.get("code", 0), error.get("message", "?"), error.get("data"))
        return reply.get("result")

    def _post(self, data: bytes) -> dict[str, Any]:
        request = urllib.request.Request(self.url + "/rpc", data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            if exc.code == 401 and not self.token:
                raise ServerError(
                    -32000,
                    "no token: give --token, set SPA_TOKEN, or set SPA_HOME to the "
                    "server's home so that $SPA_HOME/token can be read",
                ) from None
            try:
                reply: dict[str, Any] = json.loads(payload)
            except ValueError:
                raise ServerError(-32000, f"HTTP {exc.code} from {self.url}") from None
            return reply
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(
                f"no spad server at {self.url} ({reason}): start it with 'spad', "
                "or give --url / SPA_URL"
            ) from None
        result: dict[str, Any] = json.loads(payload)
        return result
