"""spa_ctl's tables: columns drop whole from the right, text is shown as text."""

from __future__ import annotations

import time

import pytest

from spad.cli.tables import Column, duration, local_time, params, printable, render

COLUMNS = [Column("name", keep=True), Column("status", keep=True), Column("a"), Column("b")]
ROWS = [["a-long-task-name", "running", "x" * 20, "y" * 20]]


def test_columns_drop_from_the_right_and_names_are_never_cut() -> None:
    lines = render(COLUMNS, ROWS, 40, wide=False).splitlines()
    assert lines[1].split() == ["a-long-task-name", "running"]
    assert lines[-1] == "(2 more columns: --wide shows them)"
    assert all(len(line) <= 40 for line in lines)
    assert render(COLUMNS, ROWS, 50, wide=False).splitlines()[1].split()[-1] == "x" * 20
    assert render(COLUMNS, ROWS, 10, wide=False).splitlines()[1].split() == [
        "a-long-task-name",
        "running",
    ]


def test_wide_and_no_limit_show_every_column() -> None:
    for text in (render(COLUMNS, ROWS, 40, wide=True), render(COLUMNS, ROWS, None, wide=False)):
        assert text.splitlines()[1].split()[-1] == "y" * 20 and "--wide" not in text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("[/bold]", "[/bold]"), ("a\x1b[31mb", "a\\x1b[31mb"), ("x\ny", "x\\ny"), ("\x00", "\\x00")],
)
def test_text_is_shown_as_text(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_params_read_as_a_shell_reads_them() -> None:
    assert params(["report ready"]) == "'report ready'"
    assert params(["report", "ready"]) == "report ready"
    assert params([]) == "-"


def test_times_are_local_with_their_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert local_time("2026-11-28T04:08:31.123Z", utc=False) == "2026-11-28 13:08:31 JST"
        assert local_time("2026-11-28T04:08:31.123Z", utc=True) == "2026-11-28 04:08:31 UTC"
        assert local_time(None, utc=False) == "-"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("seconds", "shown"), [(5, "5s"), (75, "1m15s"), (3 * 3600 + 300, "3h05m"), (90000, "1d01h")]
)
def test_durations(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown
