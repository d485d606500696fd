"""Closing a SQLite store lets go of its database file at once, not when the garbage
collector gets to it: sqlite3 keeps a connection open while a statement of it lives,
and the store kept cursors across calls (writes.BatchWriter, SQLiteStore's BEGIN and
COMMIT cursor)."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from flowledger import Engine

ONE_STEP = "name: one\nsteps:\n  - {id: a, type: sys.transform, input: {value: 1}}\n"

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")


def _open_files(folder: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


async def test_closing_an_engine_closes_its_database_file(tmp_path: Path) -> None:
    gc.collect()
    gc.disable()  # what the collector would close must already be closed
    try:
        async with Engine(f"sqlite:///{tmp_path / 'closed.db'}") as engine:
            for _ in range(3):  # rounds on the writer, inline rounds, reads
                doc = await engine.run(engine.load_text(ONE_STEP))
                assert doc["runtimeStatus"] == "Completed"
            assert _open_files(tmp_path)
        assert _open_files(tmp_path) == []
    finally:
        gc.enable()
