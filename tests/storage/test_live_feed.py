"""SQLite's change feed (storage.live.SQLiteFeed): closing it while a poll still runs in
its thread waits for that poll (closing a sqlite3 connection under a running statement
crashes the process), and a closed feed opens nothing again."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from flowledger.storage.live import SQLiteFeed, _max_rowid


async def test_closing_waits_for_a_poll_still_running(tmp_path: Path) -> None:
    path = tmp_path / "feed.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE execution_events (execution_id TEXT, seq INTEGER)")
    feed = SQLiteFeed(str(path))
    started, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> int:
        started.set()
        release.wait(5)
        return _max_rowid(conn)

    poll = asyncio.create_task(asyncio.to_thread(feed._with_connection, slow))
    assert await asyncio.to_thread(started.wait, 5)
    closing = asyncio.create_task(feed.close())
    await asyncio.sleep(0.1)
    assert not closing.done()  # it waits for the poll
    release.set()
    assert await poll == 0
    await closing
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        feed._with_connection(_max_rowid)
