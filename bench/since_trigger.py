"""What the ``since`` trigger of ``run_tasks`` costs a status change.

    .venv/bin/python bench/since_trigger.py [--tasks 300] [--rounds 10]

Every change of a task's status also stamps ``since`` (and clears ``next_attempt_at``) through
a SQLite trigger, so that no writer (runner or server) can forget it. This changes the status of
``--tasks`` tasks ``--rounds`` times, one transaction a round as the runner commits a loop turn,
with the trigger and without it (dropped), in the same run, best of three, and prints the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from spad.store.sqlite import connect, migrate

TASK = (
    "INSERT INTO run_tasks (run_id, place, name, exec, function, params, retries, retry_delay,"
    " stop_signal, stop_timeout, env, cwd, status)"
    " VALUES (1, ?, ?, 'await', 'f', '[]', 1, 1, 'SIGTERM', 6, '{}', 'data', 'new')"
)


def measure(with_trigger: bool, tasks: int, rounds: int) -> float:
    """Seconds per status change."""
    with tempfile.TemporaryDirectory() as folder:
        conn = connect(Path(folder) / "spa.db")
        migrate(conn)
        if not with_trigger:
            conn.execute("DROP TRIGGER run_tasks_since")
        conn.execute("INSERT INTO projects (ext_id, name) VALUES (1, 'p')")
        conn.execute("INSERT INTO workflows (project_id, ext_id, name) VALUES (1, 1, 'w')")
        conn.execute("INSERT INTO runs (workflow_id, status, started_at) VALUES (1, 'running', '')")
        for place in range(tasks):
            conn.execute(TASK, (place, f"t{place}"))
        started = time.perf_counter()
        for turn in range(rounds):
            conn.execute("BEGIN")
            for place in range(tasks):
                conn.execute(
                    "UPDATE run_tasks SET status = ? WHERE run_id = 1 AND name = ?",
                    ("running" if turn % 2 == 0 else "rerun", f"t{place}"),
                )
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
    return elapsed / (tasks * rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    without = min(measure(False, args.tasks, args.rounds) for _ in range(3))
    with_it = min(measure(True, args.tasks, args.rounds) for _ in range(3))
    print(
        f"a status change: {without * 1e6:.1f} us without the trigger, "
        f"{with_it * 1e6:.1f} us with it (ratio {with_it / without:.2f})"
    )


if __name__ == "__main__":
    main()
