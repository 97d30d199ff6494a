"""The systemd unit keeps runners alive across a service restart and restarts spad."""

from __future__ import annotations

import configparser

from tests.conftest import REPO


def test_the_unit_restarts_spad_and_spares_runners() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "packaging" / "spad.service")
    service = unit["Service"]
    assert service["Restart"] == "always"
    assert service["KillMode"] == "process"
    assert service["Delegate"] == "yes"  # memory_max under cgroup v2
    assert service["ExecStart"].startswith("@SPAD@ --home")
    assert unit["Install"]["WantedBy"] == "multi-user.target"
