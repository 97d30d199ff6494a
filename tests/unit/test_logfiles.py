"""Log files: rotation keeps at most three capped files; tail and follow reads."""

from __future__ import annotations

from pathlib import Path

from spad.logfiles import RotatingLog, read_from, read_tail


def test_rotation_caps_each_file_and_keeps_three(tmp_path: Path) -> None:
    path = tmp_path / "t.1.log"
    log = RotatingLog(str(path), max_bytes=100, keep=3)
    for i in range(50):
        log.write(f"{i:09d}\n".encode())  # 10 bytes a line, 500 in all
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.1.log", "t.1.log.1", "t.1.log.2"]
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())
    assert path.read_text().splitlines()[-1] == "000000049"
    assert (tmp_path / "t.1.log.2").read_text().splitlines()[0] == "000000020"


def test_a_write_larger_than_the_cap_is_split(tmp_path: Path) -> None:
    log = RotatingLog(str(tmp_path / "x.log"), max_bytes=10, keep=2)
    log.write(b"a" * 25)
    log.close()
    assert (tmp_path / "x.log").read_bytes() == b"a" * 5
    assert (tmp_path / "x.log.1").read_bytes() == b"a" * 10


def test_tail_and_follow(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    path.write_bytes(b"one\ntwo\nthree\npart")
    assert read_tail(path, 2) == "three\npart"
    assert read_tail(path, 0) == ""
    assert read_tail(path, None) == "one\ntwo\nthree\npart"
    assert read_tail(tmp_path / "missing", 5) == ""
    text, offset = read_from(path, 0)
    assert (text, offset) == ("one\ntwo\nthree\n", 14)
    assert read_from(path, offset) == ("", 14)
    assert read_from(path, offset, whole=True) == ("part", 18)
    assert read_from(path, 1000) == ("one\ntwo\nthree\n", 14)  # rotated: from the start
