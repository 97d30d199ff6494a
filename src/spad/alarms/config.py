"""``$SPA_HOME/spad.toml``: where the alarm watcher reads signals, and how it treats them.

```toml
[alarms]
poll_interval = 0.5          # seconds between reads of each source
holdoff = 60                 # seconds: a cleared alarm that fires again within it is reopened
on_open = "notify"           # optional: bin/notify gets each new alarm as JSON on stdin

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
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from spad.errors import HomeError
from spad.model import Name, describe

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError("must be a plain SQL name (letters, digits, _; schema.table allowed)")
    return value


def _dsn(value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://", "sqlite:///")):
        raise ValueError("must start with postgresql:// or sqlite:/// (sqlite:////abs/path.db)")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    dsn: Annotated[str, AfterValidator(_dsn)]
    table: Identifier
    id_column: Identifier = "id"
    channel: Identifier | None = None


class AlarmsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_interval: float = Field(default=0.5, gt=0, le=3600)
    holdoff: float = Field(default=60, ge=0, le=86_400)
    on_open: Name | None = None
    sources: list[SourceConfig] = Field(default_factory=list)


class SpadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)


def load(path: Path) -> SpadConfig:
    """The configuration, or the defaults when the file does not exist; HomeError naming the
    bad field otherwise."""
    if not path.exists():
        return SpadConfig()
    try:
        data = tomllib.loads(path.read_text())
        config = SpadConfig.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise HomeError(f"{path}: not valid TOML ({exc})") from None
    except ValidationError as exc:
        raise HomeError(f"{path}: {describe(exc)}") from None
    names = [s.name for s in config.alarms.sources]
    if len(set(names)) != len(names) or "spad" in names:
        raise HomeError(f"{path}: each source needs its own name ('spad' is spad's own)")
    return config
