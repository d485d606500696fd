"""storage.readiness: a store says it cannot serve when its schema moved under it (a
newer flowledger migrated the database while this one ran) or when writes fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from flowledger.errors import StorageError
from flowledger.storage import migrations, open_store
from tests.full_disk import fill, full
from tests.revisions import set_revision


async def test_a_schema_moved_by_another_build_is_said_and_makes_the_store_unready(
    db_url: str,
) -> None:
    store = open_store(db_url)
    await store.initialize()
    try:
        assert await store.schema_problem() is None
        await store.check_ready()
        set_revision(db_url, "9999")
        problem = await store.schema_problem()
        assert problem is not None and "revision 9999" in problem
        assert "a newer flowledger migrated it" in problem
        with pytest.raises(StorageError, match="newer flowledger migrated it"):
            await store.check_ready()
        set_revision(db_url, "0001")  # a backup restored under a running process
        with pytest.raises(StorageError, match=r"older than this flowledger's .*db upgrade"):
            await store.check_ready()
        set_revision(db_url, migrations.HEAD)
        await store.check_ready()
    finally:
        await store.close()


async def test_a_store_whose_writes_fail_is_unready_until_a_write_works(tmp_path: Path) -> None:
    """A full disk answered every read, so readiness said "ready" while every start
    failed. A failed write makes readiness probe with one of its own."""
    path = tmp_path / "full.db"
    url = f"sqlite:///{path}"
    store = open_store(url)
    await store.initialize()
    await store.put_meta_value("ballast", "x" * 50_000)  # room to make later
    await store.close()
    pages = fill(path)
    with full(pages):
        store = open_store(url)
        await store.initialize()
        try:
            await store.check_ready()  # nothing failed yet: reads answer, no probe
            with pytest.raises(StorageError, match="full"):
                await store.put_meta_value("big", "x" * 50_000)
            with pytest.raises(StorageError, match="cannot take writes: database or disk is full"):
                await store.check_ready()
            room = create_engine(url)  # room made by someone else: the probe fits again
            with room.begin() as conn:
                conn.execute(text("DELETE FROM flowledger_meta WHERE key = 'ballast'"))
            room.dispose()
            await store.check_ready()
            await store.check_ready()  # no failure since: no probe
            assert await store.meta_value("readiness_probe") is None  # nothing left behind
        finally:
            await store.close()


async def test_a_start_the_full_disk_refuses_makes_the_store_unready(tmp_path: Path) -> None:
    """Starts go through the lease group, which wrapped their failure without noting it:
    a full disk refused every start while /readyz said ready."""
    from flowledger.app import App, StartExecution

    path = tmp_path / "full.db"
    workflow = tmp_path / "w.yaml"
    workflow.write_text("name: w\nsteps: [{id: a, type: sys.no_action}]\n")
    async with App(f"sqlite:///{path}") as app:
        await app.executions.start(
            StartExecution(workflow=str(workflow), allow_file=True)
        )  # warm, migrated
    pages = fill(path)
    with full(pages):
        async with App(f"sqlite:///{path}") as app:
            await app.ping()
            big = {"text": "x" * 50_000}  # a row that needs new pages
            with pytest.raises(StorageError, match="full"):
                await app.executions.start(
                    StartExecution(workflow=str(workflow), allow_file=True, input=big)
                )
            with pytest.raises(StorageError, match="cannot take writes"):
                await app.ping()
