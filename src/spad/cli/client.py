"""The JSON-RPC client spa_ctl, the tests and the benchmarks use. Standard library only, so a
task calling ``spa_ctl`` pays little to start it."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, Any

from spad.home import DEFAULT_HOME, TOKEN, URL, read_url
from spad.numerals import ascii_int

DEFAULT_URL = "http://127.0.0.1:7070"
CHUNK = 1024 * 1024
Progress = Callable[[int], None]


class ServerError(Exception):
    """The server refused the request; the message is its own."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def of(cls, error: dict[str, Any]) -> ServerError:
        """The error of a JSON-RPC reply's ``error`` member."""
        return cls(error.get("code", 0), error.get("message", "?"), error.get("data"))


class Unreachable(Exception):
    """No server answered at the URL."""


class BadUrl(ValueError):
    """The URL given cannot be used; the message says how to write it."""


def find_url(explicit: str | None) -> str:
    """``--url``; inside a task (``SPA_TASK`` and ``SPA_HOME`` set) the URL the running server
    wrote into the home, since the task's ``SPA_URL`` names the server that started it, which
    may have come back elsewhere; then ``SPA_URL``; then the home's URL; then the default."""
    url, where = _chosen_url(explicit)
    if "://" not in url:
        raise BadUrl(
            f"{where}: the URL {url!r} has no scheme: write it http://{url} (or https://{url} "
            "for a server started with --tls-cert)"
        )
    problem = _url_problem(url)
    if problem:
        raise BadUrl(
            f"{where}: the URL {url!r} cannot be used ({problem}): write it "
            "http://HOST:PORT (https:// for a server started with --tls-cert)"
        )
    return url.rstrip("/")


def _chosen_url(explicit: str | None) -> tuple[str, str]:
    """The URL and where it was found, to name it when it cannot be used."""
    if explicit:
        return explicit, "--url"
    home = os.environ.get("SPA_HOME")
    if home and os.environ.get("SPA_TASK") and (url := read_url(home)):
        return url, os.path.join(home, URL)
    if url := os.environ.get("SPA_URL"):
        return url, "SPA_URL"
    if url := read_url(home or DEFAULT_HOME):
        return url, os.path.join(home or DEFAULT_HOME, URL)
    return DEFAULT_URL, "the default URL"


def _url_problem(url: str) -> str | None:
    """Why urllib or http.client would fail on ``url`` before any connection, or None."""
    if not url.isprintable() or " " in url:
        return "it holds a space or a control character"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - read for its check: a port that is no number 0-65535 raises
    except ValueError as exc:  # "Invalid IPv6 URL", "Port could not be cast to integer ..."
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return f"the scheme is {parts.scheme}, not http or https"
    if not parts.hostname:
        return "no host"
    return None


class ServerEvent:
    """One message of the event stream: an event (``id``, ``kind``, ``data``) or a comment."""

    __slots__ = ("comment", "data", "id", "kind")

    def __init__(
        self,
        id: int | None = None,
        kind: str = "",
        data: dict[str, Any] | None = None,
        comment: str | None = None,
    ) -> None:
        self.id = id
        self.kind = kind
        self.data = data or {}
        self.comment = comment

    def __repr__(self) -> str:
        return f"ServerEvent({self.id}, {self.kind!r}, {self.data}, comment={self.comment!r})"


def read_events(response: IO[bytes]) -> Iterator[ServerEvent]:
    """Server-Sent Events' framing: ``field: value`` lines, a blank line ends a message,
    a line starting with ``:`` is a comment."""
    fields: dict[str, str] = {}
    for raw in iter(response.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith(":"):
            yield ServerEvent(comment=line[1:].strip())
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif "data" in fields:
            event_id = fields.get("id", "")
            yield ServerEvent(
                ascii_int(event_id),
                fields.get("event", "message"),
                json.loads(fields["data"]),
            )
            fields = {}


def find_token(explicit: str | None) -> str | None:
    """``--token``, then ``SPA_TOKEN``, then ``$SPA_HOME/token`` (default home /opt/spa)."""
    if explicit:
        return explicit
    if os.environ.get("SPA_TOKEN"):
        return os.environ["SPA_TOKEN"]
    path = Path(os.environ.get("SPA_HOME") or DEFAULT_HOME) / TOKEN
    try:
        return path.read_text().strip()
    except OSError:
        return None


class Client:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 60,
        cacert: str | None = None,
    ):
        self.url = find_url(url)
        self.token = find_token(token)
        self.timeout = timeout
        self._ids = itertools.count(1)
        cafile = cacert or os.environ.get("SPA_CACERT")
        self._tls = ssl.create_default_context(cafile=cafile) if cafile else None

    def call(self, method: str, **params: Any) -> Any:
        body = {
            "jsonrpc": "2.0",
            "method": method,
            "id": next(self._ids),
            "params": {k: v for k, v in params.items() if v is not None},
        }
        reply = self._post(json.dumps(body).encode())
        if "error" in reply:
            raise ServerError.of(reply["error"])
        return reply.get("result")

    def batch(self, method: str, each: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One JSON-RPC batch: ``method`` called with each of ``each``, in one request. The
        replies (each with ``result`` or ``error``) in the order of ``each``."""
        ids = [next(self._ids) for _ in each]
        body = [
            {"jsonrpc": "2.0", "method": method, "id": i, "params": params}
            for i, params in zip(ids, each, strict=True)
        ]
        replies: Any = self._post(json.dumps(body).encode())
        if isinstance(replies, dict):  # the batch itself was refused
            raise ServerError.of(replies.get("error", {}))
        by_id = {reply.get("id"): reply for reply in replies}
        return [by_id.get(i, {}) for i in ids]  # a reply missing: neither result nor error

    def _post(self, data: bytes) -> dict[str, Any]:
        request = urllib.request.Request(self.url + "/rpc", data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self._tls
            ) as response:
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

    # -- events ----------------------------------------------------------------------------

    def events(self, last_event_id: int | None = None) -> Generator[ServerEvent, None, None]:
        """``GET /events``: each event as it comes, and each comment (a heartbeat, or the
        first line, which says the stream is open). Ends when the server closes the stream."""
        connection = self._connection()
        headers = self._auth()
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        try:
            connection.request("GET", self._prefix() + "/events", headers=headers)
            response = connection.getresponse()
            if response.status != 200:
                self._file_reply(response.status, response.read())
            yield from read_events(response)
        except OSError as exc:
            raise Unreachable(f"no spad server at {self.url} ({exc})") from None
        finally:
            connection.close()

    def _prefix(self) -> str:
        return urllib.parse.urlsplit(self.url).path.rstrip("/")

    # -- files -----------------------------------------------------------------------------

    def put_file(
        self, local: Path, remote: str, executable: bool = False, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Stream ``local`` to ``/files/<remote>`` with its sha256 (read once to hash it)."""
        size = local.stat().st_size
        digest = hashlib.sha256()
        with local.open("rb") as source:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
        headers = {
            "Content-Length": str(size),
            "X-Content-SHA256": digest.hexdigest(),
            "Content-Type": "application/octet-stream",
        }
        if executable:
            headers["X-Executable"] = "1"
        with local.open("rb") as source:
            status, body = self._stream("PUT", remote, headers, source, progress)
        return self._file_reply(status, body)

    def get_file(
        self, remote: str, write: Callable[[bytes], object], progress: Progress | None = None
    ) -> str:
        """Stream ``/files/<remote>`` through ``write``; raise ServerError when its sha256 does
        not match what the server sent. Returns the sha256."""
        connection = self._connection()
        try:
            connection.request("GET", self._file_path(remote), headers=self._auth())
            response = connection.getresponse()
            if response.status != 200:
                self._file_reply(response.status, response.read())
            expected = response.headers.get("X-Content-SHA256", "")
            digest = hashlib.sha256()
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                write(chunk)
                if progress:
                    progress(len(chunk))
        except OSError as exc:
            raise Unreachable(f"no spad server at {self.url} ({exc})") from None
        finally:
            connection.close()
        if digest.hexdigest() != expected:
            raise ServerError(-32000, f"{remote} arrived damaged (sha256 differs): copy it again")
        return expected

    def _stream(
        self,
        method: str,
        remote: str,
        headers: dict[str, str],
        source: IO[bytes],
        progress: Progress | None,
    ) -> tuple[int, bytes]:
        connection = self._connection()
        try:
            connection.putrequest(method, self._file_path(remote))
            for key, value in {**headers, **self._auth()}.items():
                connection.putheader(key, value)
            connection.endheaders()
            try:
                while chunk := source.read(CHUNK):
                    connection.send(chunk)
                    if progress:
                        progress(len(chunk))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server refused early (too large...): its reply says why
            response = connection.getresponse()
            return response.status, response.read()
        except OSError as exc:
            raise Unreachable(f"no spad server at {self.url} ({exc})") from None
        finally:
            connection.close()

    def _connection(self) -> http.client.HTTPConnection:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname or "127.0.0.1",
                parts.port or 443,
                timeout=self.timeout,
                context=self._tls or ssl.create_default_context(),
            )
        return http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=self.timeout
        )

    def _file_path(self, remote: str) -> str:
        prefix = urllib.parse.urlsplit(self.url).path.rstrip("/")
        return f"{prefix}/files/{urllib.parse.quote(remote)}"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @staticmethod
    def _file_reply(status: int, body: bytes) -> dict[str, Any]:
        try:
            reply: dict[str, Any] = json.loads(body)
        except ValueError:
            raise ServerError(-32000, f"HTTP {status} from the server") from None
        if status != 200:
            error = reply.get("error", {})
            raise ServerError(
                error.get("code", -32000), error.get("message", f"HTTP {status}"), error.get("data")
            )
        return reply
