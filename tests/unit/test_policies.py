"""Pure rules: statuses, retry delays, the crash-loop back-off, deadlines."""

from __future__ import annotations

import pytest

from spad import retention, states
from spad.runner.engine import retry_delay
from spad.runner.timers import Timers
from spad.server.runners import restart_delay


def test_status_texts_are_the_contracts() -> None:
    assert (states.error(3), states.terminated(15), states.terminated(-9), states.immortal(42)) == (
        "error(3)",
        "terminated(-15)",
        "terminated(-9)",
        "immortal(42)",
    )
    assert states.from_exit_code(0) == "success0"
    assert states.from_exit_code(2) == "error(2)"
    assert states.from_exit_code(-15) == "terminated(-15)"
    assert states.number("error(3)") == 3 and states.number("terminated(-15)") == -15
    assert states.number("running") is None
    assert states.is_failure("error(1)") and states.is_failure("terminated(-9)")
    assert not states.is_failure("success0") and states.is_immortal("immortal(7)")


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [(1, 1.0, 1.0), (2, 0.0, 2.0), (3, 0.0, 4.0), (2, 1.0, 2.2), (7, 0.0, 60.0), (30, 0.5, 63.0)],
)
def test_retry_delay_doubles_up_to_a_minute_with_jitter(
    failures: int, jitter: float, expected: float
) -> None:
    assert retry_delay(1.0, failures, jitter) == pytest.approx(expected)


def test_a_task_restarted_without_end_keeps_a_minute_between_restarts() -> None:
    """``retries: -1``: past the 1,024th restart, 2.0 ** failures overflowed and the runner
    died, taking the run's healthy tasks with it."""
    for failures in (1025, 10**6):
        assert retry_delay(1.0, failures, 0.5) == pytest.approx(63.0)


def test_the_first_restart_is_exactly_retry_delay() -> None:
    assert retry_delay(0.25, 1, 0.99) == 0.25


@pytest.mark.parametrize(
    ("deaths", "delay"),
    [(0, 0), (1, 0), (2, 1), (3, 2), (6, 16), (20, 300), (1026, 300), (10**6, 300)],
)
def test_a_crash_loop_backs_off(deaths: int, delay: float) -> None:
    assert restart_delay(deaths) == delay


def test_timers_run_in_deadline_order_and_can_be_cancelled() -> None:
    now = [100.0]
    timers = Timers(clock=lambda: now[0])
    fired: list[str] = []
    timers.after(2, lambda: fired.append("b"))
    timers.after(1, lambda: fired.append("a"))
    cancelled = timers.after(1.5, lambda: fired.append("x"))
    cancelled.cancel()
    assert timers.timeout() == 1
    now[0] = 101.6
    timers.run_due()
    assert fired == ["a"]
    assert timers.timeout() == pytest.approx(0.4)
    now[0] = 103
    timers.run_due()
    assert fired == ["a", "b"] and timers.timeout() is None and not timers.pending()


def test_the_runner_imports_nothing_heavy() -> None:
    """Every running workflow pays for each module its runner imports (bench/runner_memory.py)."""
    import subprocess
    import sys

    code = "import sys, spad.runner.main, spad.executors.local;print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split())  # fmt: skip
    # (datetime is not here: sqlite3 imports it.)
    heavy = {"pathlib", "dataclasses", "logging", "random", "subprocess", "typing"}
    assert "spad.transitions" in loaded and not loaded & (heavy | {"pydantic"})


@pytest.mark.parametrize("size", ["9" * 400 + "G", "1" + "0" * 400])
def test_a_size_too_large_for_any_disk_is_refused_in_words(size: str) -> None:
    """A number of 400 digits is infinite as a float: it was an OverflowError, a traceback."""
    with pytest.raises(ValueError, match="larger than any disk"):
        retention.parse_size(size)
