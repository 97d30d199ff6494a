"""``$SPA_HOME/spad.toml``: where the alarm watcher reads signals, and how it treats them
(and ``[retention]``, see :mod:`spad.retention`).

```toml
[alarms]
poll_interval = 0.5          # seconds between reads of each source
holdoff = 60                 # seconds: a cleared alarm that fires again within it is reopened
on_open = "notify"           # optional: bin/notify gets each new alarm as JSON on stdin
hook_timeout = 30            # seconds the hook may run; then it is killed (and logged)

[hooks]
on_change = "notify"         # optional: bin/notify gets each workflow transition on stdin
timeout = 10                 # seconds a hook may take before it is killed

[metrics]
public = false               # true: GET /metrics without a token

[[alarms.sources]]
name = "analyses"
dsn = "postgresql://user:secret@localhost/analyses"   # or "sqlite:////path/to/file.db"
table = "anomalies"
id_column = "id"             # increasing column; the default
channel = "anomalies"        # optional (PostgreSQL): LISTEN here to wake at once
```
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from spad import retention
from spad.definitions.model import FieldError, describe, name_field
from spad.errors import HomeError
from spad.executors import slurm_config

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?\Z")


def _identifier(field: str, value: str | None) -> list[tuple[str, str]]:
    if value is not None and not _IDENTIFIER.match(value):
        return [(field, "must be a plain SQL name (letters, digits, _; schema.table allowed)")]
    return []


class SourceConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    name: str
    dsn: str
    table: str
    id_column: str = "id"
    channel: str | None = None

    def __post_init__(self) -> None:
        name_field("name", self.name)
        problems = []
        if not self.dsn.startswith(("postgresql://", "postgres://", "sqlite:///")):
            why = "must start with postgresql:// or sqlite:/// (sqlite:////abs/path.db)"
            problems.append(("dsn", why))
        for field in ("table", "id_column", "channel"):
            problems += _identifier(field, getattr(self, field))
        if problems:
            raise FieldError(*problems[0], *problems[1:])


class AlarmsConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    poll_interval: Annotated[float, Meta(gt=0, le=3600)] = 0.5
    holdoff: Annotated[float, Meta(ge=0, le=86_400)] = 60
    on_open: str | None = None
    #: Seconds the hook may run; then it is killed (and the kill logged).
    hook_timeout: Annotated[float, Meta(gt=0, le=3600)] = 30
    sources: list[SourceConfig] = []

    def __post_init__(self) -> None:
        name_field("on_open", self.on_open)


class RetentionConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``[retention]``: see :mod:`spad.retention`."""

    runs: Annotated[int, Meta(ge=1, le=1_000_000)] = retention.DEFAULT_RUNS
    disk_min_free: str | int = retention.DEFAULT_DISK_MIN_FREE

    def __post_init__(self) -> None:
        try:
            retention.parse_size(self.disk_min_free)
        except ValueError as exc:
            raise FieldError("disk_min_free", str(exc)) from None

    @property
    def disk_min_free_bytes(self) -> int:
        return retention.parse_size(self.disk_min_free)


class HooksConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``on_change``: ``bin/<name>`` gets each workflow transition as JSON on stdin."""

    on_change: str | None = None
    timeout: Annotated[float, Meta(gt=0, le=3600)] = 10.0

    def __post_init__(self) -> None:
        name_field("on_change", self.on_change)


class MetricsConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``public = true``: ``GET /metrics`` without a token."""

    public: bool = False


class SpadConfig(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    alarms: AlarmsConfig = msgspec.field(default_factory=AlarmsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    hooks: HooksConfig = msgspec.field(default_factory=HooksConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    #: Checked by :mod:`spad.executors.slurm_config`, which the runner reads it with too.
    slurm: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.slurm is not None:
            try:
                slurm_config.parse(self.slurm)
            except slurm_config.ConfigError as exc:
                raise FieldError("slurm", str(exc).removeprefix("slurm.")) from None


def load(path: Path) -> SpadConfig:
    """The configuration, or the defaults when the file does not exist; HomeError naming the
    bad field otherwise."""
    if not path.exists():
        return SpadConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        config = msgspec.convert(data, SpadConfig)
    except UnicodeDecodeError:
        raise HomeError(f"{path}: not UTF-8 text, as TOML must be: write it again") from None
    except OSError as exc:  # a folder in its place, no permission
        raise HomeError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise HomeError(f"{path}: not valid TOML ({exc})") from None
    except msgspec.ValidationError as exc:
        problems = "; ".join(f"{where}: {why}" for where, why in describe(exc))
        raise HomeError(f"{path}: {problems}") from None
    names = [s.name for s in config.alarms.sources]
    if len(set(names)) != len(names) or "spad" in names:
        raise HomeError(f"{path}: each source needs its own name ('spad' is spad's own)")
    return config
