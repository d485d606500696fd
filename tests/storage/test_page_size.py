"""A new SQLite file gets storage.sqlite.PAGE_SIZE (a chain's commit writes whole pages);
a file made with another page size keeps it and works as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flowledger import Engine
from flowledger.storage.sqlite import PAGE_SIZE

ONE_STEP = "name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"


def _page_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


async def _run_one(path: Path) -> None:
    async with Engine(f"sqlite:///{path}") as engine:
        doc = await engine.run(engine.load_text(ONE_STEP))
        assert doc["runtimeStatus"] == "Completed"


async def test_a_new_file_gets_the_page_size(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await _run_one(path)
    assert PAGE_SIZE == 1024
    assert _page_size(path) == PAGE_SIZE


async def test_a_file_of_another_page_size_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # as files made before PAGE_SIZE are: 4 KiB
        conn.execute("PRAGMA page_size=4096")
        conn.execute("CREATE TABLE made_before (x)")
    await _run_one(path)
    await _run_one(path)  # opened again, migrated already
    assert _page_size(path) == 4096
