"""The JSON-RPC 2.0 envelope: parse, batch, notifications, errors; dispatch to an allow-list.

Transport-free: :func:`handle` takes the body's bytes and returns the reply's bytes (or None
when there is nothing to send: only notifications).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from spad.errors import (
    InternalError,
    Invalid,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    SpadError,
    error_reply,
)
from spad.server.params import parse
from spad.store.sqlite import BUSY, FULL, trouble

log = logging.getLogger("spad.rpc")

#: What a caller is told when spa.db refuses a write for now; nothing was changed.
STORE_REFUSALS = {
    FULL: "disk full: spa.db cannot be written, nothing was changed; free space on the file "
    "system of spad's home, then try again",
    BUSY: "database busy: another process holds spa.db's write lock, nothing was "
    "changed; try again once it lets go (see who with: fuser SPA_HOME/spa.db)",
}
INTERNAL_MESSAGE = "internal error: the server log has the details"
#: SQLite's PERM, READONLY, IOERR and CANTOPEN: spa.db (or its folder, or the disk) refuses
#: writes for a reason someone must fix, not one to wait out.
_UNWRITABLE = (3, 8, 10, 14)
MAX_BATCH = 1_000
MAX_DEPTH = 64
#: The replies of one batch together, encoded.
MAX_BATCH_REPLY = 16 * 1024 * 1024
_OVER_BUDGET = (
    f"not done: the replies of this batch reached {MAX_BATCH_REPLY // (1024 * 1024)} MiB; "
    "send fewer calls in one batch (or page logs with offset)"
)
#: ``error.data.limit`` of a call not made for its batch's reply budget: made alone, it may be.
OVER_BUDGET_LIMIT = "batch_reply"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Method:
    """One allowed method: its function and the parameter class its params are checked
    against (see :mod:`spad.server.params`; None: the function takes the raw params)."""

    function: Callable[..., Any]
    params: type | None = None
    #: Changes state: refused to a read-only token, and recorded in the audit trail...
    mutating: bool = False
    #: ...unless it is a liveness ping (``heartbeat``): too frequent to record.
    audited: bool = True

    @property
    def recorded(self) -> bool:
        """A call of it goes to the audit trail."""
        return self.mutating and self.audited


#: Records a mutating call: method, outcome, detail.
Audit = Callable[[str, str, str], None]


_MISSING = object()


class RawJSON(str):
    """A result that is already JSON text: spliced into the reply as it is (a large status is
    built by SQLite; decoding and encoding it again would cost more than the query)."""


def handle(
    body: bytes, methods: Mapping[str, Method], context: Any, audit: Audit | None = None
) -> bytes | None:
    parts = handle_parts(body, methods, context, audit)
    return None if parts is None else b"".join(parts)


def handle_parts(
    body: bytes, methods: Mapping[str, Method], context: Any, audit: Audit | None = None
) -> list[bytes] | None:
    """The reply in pieces, to be sent one after the other: a batch's replies are not joined
    into one more copy of up to 16 MiB."""
    reply = _handle(body, methods, context, audit)
    return [reply] if isinstance(reply, bytes) else reply


def _handle(
    body: bytes, methods: Mapping[str, Method], context: Any, audit: Audit | None
) -> bytes | list[bytes] | None:
    try:
        message = json.loads(body, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError):
        return _encode(error_reply(ParseError("parse error: the body is not valid JSON")))
    if _depth(message) > MAX_DEPTH:
        return _encode(error_reply(InvalidRequest(f"JSON nested deeper than {MAX_DEPTH} levels")))
    if isinstance(message, list):
        if not message:
            return _encode(error_reply(InvalidRequest("invalid request: empty batch")))
        if len(message) > MAX_BATCH:
            too_many = InvalidRequest(f"a batch holds at most {MAX_BATCH} requests")
            return _encode(error_reply(too_many))
        return _batch(message, methods, context, audit)
    reply = _one(message, methods, context, audit)
    return _encode(reply) if reply is not None else None


def _batch(
    messages: list[Any], methods: Mapping[str, Method], context: Any, audit: Audit | None
) -> list[bytes] | None:
    """The replies of a batch, encoded one by one as they come, within
    :data:`MAX_BATCH_REPLY`: a reply that would cross it is replaced by an error, and the
    calls after it are not made (each gets that error), so a small request cannot make the
    server hold gigabytes."""
    parts: list[bytes] = []
    size, spent = 0, False
    for message in messages:
        reply = None if spent else _one(message, methods, context, audit)
        if spent or reply is not None:
            encoded = b"" if reply is None else _encode(reply)
            if spent or size + len(encoded) > MAX_BATCH_REPLY:
                spent = True
                if _id_of(message) is _MISSING:
                    continue  # a notification: no reply, even for an error
                over = Invalid(_OVER_BUDGET, limit=OVER_BUDGET_LIMIT)
                encoded = _encode(error_reply(over, _id_of(message)))
            parts.append(b", " if parts else b"[")
            parts.append(encoded)
            size += len(encoded) + 2
    return [*parts, b"]"] if parts else None


def _id_of(message: Any) -> Any:
    request_id = message.get("id", _MISSING) if isinstance(message, dict) else None
    return request_id if request_id is _MISSING or _valid_id(request_id) else None


def _one(
    message: Any, methods: Mapping[str, Method], context: Any, audit: Audit | None
) -> dict[str, Any] | None:
    if not isinstance(message, dict):
        return error_reply(InvalidRequest("invalid request: expected a JSON object"))
    request_id = message.get("id", _MISSING)
    reply_id = request_id if _valid_id(request_id) else None
    problem = _check_envelope(message, request_id)
    if problem:
        name = message.get("method")
        refused = methods.get(name) if isinstance(name, str) else None
        if audit is not None and refused is not None and refused.recorded:  # recorded too
            audit(
                str(name),
                f"error {InvalidRequest.code}: {problem}",
                _summary(message.get("params")),
            )
        return error_reply(InvalidRequest(f"invalid request: {problem}"), reply_id)
    params = message.get("params", {})
    if _has_lone_surrogate(params):  # refused before anything can act on it, and audited
        result: Any = InvalidParams(
            "invalid params: a string is not valid Unicode (it holds a lone surrogate)"
        )
    else:
        result = _call(message["method"], params, methods, context)
    method = methods.get(message["method"])
    if audit is not None and method is not None and method.recorded:
        outcome = (
            f"error {result.code}: {result.message}" if isinstance(result, SpadError) else "ok"
        )
        try:
            audit(message["method"], outcome, _summary(message.get("params")))
        except sqlite3.OperationalError as exc:  # the reply matters more than its trace
            log.warning("%s not in the audit trail: %s", message["method"], exc)
    if request_id is _MISSING:
        return None  # a notification: no reply, even for an error
    if isinstance(result, SpadError):
        return error_reply(result, request_id)
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def _check_envelope(message: dict[str, Any], request_id: Any) -> str | None:
    if message.get("jsonrpc") != "2.0":
        return '"jsonrpc" must be "2.0"'
    if not isinstance(message.get("method"), str):
        return '"method" must be a string'
    if request_id is not _MISSING and not _valid_id(request_id):
        return '"id" must be a string, a number or null'
    if _has_lone_surrogate(message["method"]) or _has_lone_surrogate(request_id):
        return '"method" and "id" must be valid Unicode'
    if "params" in message and not isinstance(message["params"], dict | list):
        return '"params" must be an object or an array'
    extra = set(message) - {"jsonrpc", "method", "params", "id"}
    if extra:
        return f"unknown member {sorted(extra)[0]!r}"
    return None


def _call(name: str, params: Any, methods: Mapping[str, Method], context: Any) -> Any:
    method = methods.get(name)
    if method is None:
        return MethodNotFound(f"method not found: {name!r} (see spa_ctl --help)")
    try:
        if method.params is not None:
            params = parse(method.params, params)
        return method.function(context, params)
    except SpadError as exc:
        return exc
    except sqlite3.OperationalError as exc:
        refusal = STORE_REFUSALS.get(trouble(exc) or "") or _unwritable(exc)
        if refusal is None:
            log.exception("method %s failed", name)
            return InternalError(INTERNAL_MESSAGE)
        log.warning("method %s refused by the store: %s", name, exc)
        return InternalError(refusal)
    except Exception:
        log.exception("method %s failed", name)
        return InternalError(INTERNAL_MESSAGE)


def _unwritable(exc: sqlite3.OperationalError) -> str | None:
    """What to do when spa.db cannot be written for a reason of the file's or the disk's."""
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _UNWRITABLE:
        return None
    return (
        f"spa.db cannot be written ({exc}): nothing was changed; check the file, its -wal and "
        "-shm files and their folder (owner, mode, a read-only or immutable flag) and the "
        "disk, then try again"
    )


def _summary(params: Any) -> str:
    """A short, readable trace of what was asked (the audit trail is not a copy of it)."""
    try:
        return json.dumps(params, ensure_ascii=False)[:300]
    except (TypeError, ValueError):
        return ""


def _valid_id(value: Any) -> bool:
    if isinstance(value, str):
        return not _has_lone_surrogate(value)
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _not_json(constant: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are Python's extension, not JSON."""
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: an Infinity in disguise
        raise ValueError(f"{text} is beyond a double")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (keys too) holds a lone surrogate: JSON's
    ``\\udcff`` escapes decode to one, and it is not Unicode (SQLite, the environment and the
    reply's UTF-8 would all fail on it, after the change was made)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _encode(reply: Any) -> bytes:
    if isinstance(reply, list):
        return b"[" + b", ".join(_encode(r) for r in reply) + b"]"
    result = reply.get("result") if isinstance(reply, dict) else None
    if isinstance(result, RawJSON):
        request_id = json.dumps(reply["id"], ensure_ascii=False)
        text = f'{{"jsonrpc": "2.0", "result": {result}, "id": {request_id}}}'
    else:
        try:
            text = json.dumps(reply, ensure_ascii=False, allow_nan=False)
        except ValueError:  # NaN is not JSON: say so rather than send what no client parses
            log.error("a reply held a NaN or an infinity: replaced by an error")
            not_json = InternalError("internal error: a value is not JSON")
            text = json.dumps(error_reply(not_json, reply.get("id")))
    # A surrogate that still got in (a file name that is not UTF-8, read by os.listdir)
    # becomes the JSON escape ``\\udcff``: the reply is always sent, and stays valid JSON.
    return text.encode("utf-8", "backslashreplace")


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (a deep body must not overflow the stack)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest
