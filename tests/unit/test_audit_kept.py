"""The audit trail keeps its newest rows: anonymous clients' failed sign-ins, one row per
address and minute, grew it without end."""

from __future__ import annotations

from pathlib import Path

from spad.store import audit
from spad.store.sqlite import AUDIT_KEPT, connect, migrate, transaction


def test_the_audit_trail_keeps_its_newest_rows(tmp_path: Path) -> None:
    conn = connect(tmp_path / "spa.db")
    migrate(conn)
    with transaction(conn):
        for address in range(AUDIT_KEPT + 10):
            audit.record(
                conn, "sign_in", f"10.{address >> 16}.{address >> 8 & 255}.{address & 255}", "error"
            )
    ids = [row[0] for row in conn.execute("SELECT id FROM audit ORDER BY id")]
    assert len(ids) == AUDIT_KEPT
    assert ids[0] == 11 and ids[-1] == AUDIT_KEPT + 10  # the ten oldest went
    conn.close()
