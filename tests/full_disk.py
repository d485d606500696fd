"""A SQLite database with no room left: SQLite's own SQLITE_FULL ("database or disk is
full"), as on a full disk, made with ``PRAGMA max_page_count`` (a per-connection limit):
``fill`` takes up every free byte of the file under that limit, and ``full`` sets it on
every connection opened meanwhile (the store's among them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


def fill(path: Path) -> int:
    """Take up the free space of the database at ``path`` without growing it; its pages."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        pages: int = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")
        size, count = 4096, 0
        while size:  # smaller and smaller rows, until not even a byte fits
            try:
                conn.execute(
                    "INSERT INTO flowledger_meta (key, value) VALUES (?, ?)",
                    (f"filler-{count}", "x" * size),
                )
                count += 1
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc):
                    raise
                size //= 2
        return pages
    finally:
        conn.close()


@contextmanager
def full(pages: int) -> Iterator[None]:
    """Every SQLite connection opened inside may not grow its database past ``pages``."""

    def limit(driver: Any, record: Any) -> None:
        if isinstance(driver, sqlite3.Connection):
            driver.execute(f"PRAGMA max_page_count={pages}")

    event.listen(Engine, "connect", limit)
    try:
        yield
    finally:
        event.remove(Engine, "connect", limit)
