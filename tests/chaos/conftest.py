"""The chaos suite's time limit grows with ``--cycles``."""

from __future__ import annotations

import pytest

#: Seconds allowed for one cycle, generous for a loaded 2-core machine.
PER_CYCLE = 20


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cycles = int(config.getoption("--cycles"))
    for item in items:
        if "chaos" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.timeout(120 + cycles * PER_CYCLE))
