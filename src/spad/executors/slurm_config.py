"""``[slurm]`` in ``$SPA_HOME/spad.toml``: whether Slurm is enabled, and how jobs are submitted.

```toml
[slurm]
partition = "batch"        # optional; the cluster's default partition otherwise
sbatch_args = []           # extra arguments for every job, e.g. ["--time=1-00:00:00"]
poll_interval = 1.0        # seconds between looks at the queue
command_timeout = 15.0     # seconds a Slurm command may take before it counts as unanswered
```

Standard library only: the runner of a workflow with Slurm tasks reads it too.
"""

from __future__ import annotations

import os

from spad.home import CONFIG

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FIELDS = ("partition", "sbatch_args", "poll_interval", "command_timeout")
#: The commands spad runs; each must be on PATH where spad and its runners run.
COMMANDS = ("sbatch", "squeue", "scancel")


class SlurmConfig:
    __slots__ = ("command_timeout", "partition", "poll_interval", "sbatch_args")

    def __init__(
        self,
        partition: str | None = None,
        sbatch_args: list[str] | None = None,
        poll_interval: float = 1.0,
        command_timeout: float = 15.0,
    ) -> None:
        self.partition = partition
        self.sbatch_args = sbatch_args or []
        self.poll_interval = poll_interval
        self.command_timeout = command_timeout


class ConfigError(ValueError):
    """spad.toml's [slurm] section is wrong; the message says where and why."""


def load(home: str) -> SlurmConfig | None:
    """The ``[slurm]`` section of the home's spad.toml; None when there is none."""
    path = os.path.join(home, CONFIG)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    import tomllib  # only with a spad.toml: a home without one never loads it

    try:
        data = tomllib.loads(raw.decode())  # what tomllib.load does with the file
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, as TOML must be: write it again") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    section = data.get("slurm")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [slurm] must be a table")
    try:
        return parse(section)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse(section: dict[str, Any]) -> SlurmConfig:
    """The section's fields, checked; ConfigError naming the bad one."""
    unknown = sorted(set(section) - set(FIELDS))
    if unknown:
        raise ConfigError(f"slurm.{unknown[0]}: unknown key (known: {', '.join(FIELDS)})")
    partition = section.get("partition")
    if partition is not None and (not isinstance(partition, str) or not partition):
        raise ConfigError("slurm.partition must be a non-empty string")
    args = section.get("sbatch_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError('slurm.sbatch_args must be a list of strings: ["--time=60"]')
    numbers = {}
    for key, default in (("poll_interval", 1.0), ("command_timeout", 15.0)):
        value = section.get(key, default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not 0.05 <= value <= 3600:
            raise ConfigError(f"slurm.{key} must be a number of seconds from 0.05 to 3600")
        numbers[key] = float(value)
    return SlurmConfig(partition, list(args), numbers["poll_interval"], numbers["command_timeout"])


def missing_commands(path: str | None = None) -> list[str]:
    """Slurm's commands that are not on PATH (``path``: another PATH to look in)."""
    import shutil  # the server's check only: not on the runner's path

    return [c for c in COMMANDS if shutil.which(c, path=path) is None]


def refusal(home: str) -> str | None:
    """Why a workflow naming ``slurm`` cannot run here, or None when it can."""
    try:
        config = load(home)
    except ConfigError as exc:
        return f"Slurm is not configured correctly: {exc}"
    if config is None:
        return (
            f"Slurm is not configured: add a [slurm] section to {os.path.join(home, CONFIG)}"
            " (it may be empty)"
        )
    missing = missing_commands()
    if missing:
        return (
            f"Slurm is not installed here: {', '.join(missing)} not found on PATH"
            " (install Slurm's client commands, e.g. apt-get install slurm-client)"
        )
    return None
