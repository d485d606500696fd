"""The floor every engine figure is compared with: a bare SQLite WAL commit.

One commit = BEGIN IMMEDIATE, INSERT one row, UPDATE one row, COMMIT, through the sqlite3
driver on a WAL file with ``synchronous=NORMAL`` (flowledger's default setting), the rows
shaped like a step execution. Imported by the other benches so each prints the floor
measured in the same run beside its own figures.

    .venv/bin/python bench/floor.py
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

_ROWS = 2000


def sqlite_commit_seconds(commits: int = _ROWS) -> float:
    """Seconds per bare commit (insert + update), the best of three runs."""
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as folder:
            best = min(best, _run(Path(folder) / "floor.db", commits))
    return best


def _run(path: Path, commits: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE steps (id TEXT PRIMARY KEY, execution_id TEXT, step_id TEXT, "
            "status TEXT, attempt INTEGER, output TEXT, started_at TEXT, completed_at TEXT)"
        )
        conn.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, status TEXT, seq INTEGER)")
        conn.execute("INSERT INTO runs VALUES ('run', 'Running', 0)")
        start = time.perf_counter()
        for i in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO steps VALUES (?, 'run', ?, 'Running', 1, NULL, "
                "'2026-01-01T00:00:00', NULL)",
                (f"step-{i}", f"s{i}"),
            )
            conn.execute("UPDATE runs SET seq = ?, status = 'Running' WHERE id = 'run'", (i,))
            conn.execute("COMMIT")
        return (time.perf_counter() - start) / commits
    finally:
        conn.close()


def main() -> None:
    print(f"bare SQLite WAL commit (insert + update): {sqlite_commit_seconds() * 1e6:.1f} us")


if __name__ == "__main__":
    main()
