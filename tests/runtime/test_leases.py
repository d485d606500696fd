"""The lease heartbeat (runtime.leases): stopping it never swallows its caller's cancel."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from flowledger import Engine
from flowledger.errors import StorageError
from flowledger.runtime.leases import LeaseKeeper, database_trouble
from flowledger.timeutil import Clock

LEASE = timedelta(minutes=5)

#: What a SQLite file locked past the busy timeout is said to be (storage.sqlpart).
LOCKED = (
    "the SQLite database stayed locked by another process for 30 s (database is locked): "
    "something holds its write lock (an open transaction in a sqlite3 shell, a backup, "
    "a stuck process)"
)


async def test_stop_ends_the_heartbeat_and_lets_a_cancel_of_its_caller_through(
    engine: Engine,
) -> None:
    keeper = LeaseKeeper(engine.store, "me", timedelta(minutes=5), Clock(), lambda _: None)
    keeper.start()
    heartbeat = keeper._task
    assert heartbeat is not None
    went_on = asyncio.Event()

    async def let_go() -> None:  # as runtime.driving lets go of its last execution
        await keeper.stop()
        went_on.set()  # a swallowed cancel would get here

    caller = asyncio.create_task(let_go())
    await asyncio.sleep(0)  # the caller now waits in stop() for the heartbeat to end
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, timeout=5)
    assert not went_on.is_set()
    assert heartbeat.cancelled() and keeper._task is None
    # Stopped with nobody cancelling: it just ends, and a second stop is nothing.
    keeper.start()
    await keeper.stop()
    await keeper.stop()
    assert keeper._task is None


async def test_a_locked_database_is_trouble_to_tell_in_a_line_not_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A heartbeat that met a lock held past the busy timeout logged two tracebacks; the
    database's conditions are said in a line, anything else keeps its traceback. The store
    raises them as StorageError where they arise (the runtime looked for the drivers'
    module names): the heartbeat's renewal, and a claim."""
    monkeypatch.setattr("flowledger.storage.sqlite.BUSY_TIMEOUT_MS", 50)
    caplog.set_level(logging.WARNING, logger="flowledger.runtime.leases")
    path = tmp_path / "locked.db"
    async with Engine(f"sqlite:///{path}") as engine:
        await engine.start(engine.load_text("name: w\nsteps: [{id: a, type: sys.no_action}]\n"))
        [(held, epoch)] = await engine.store.claim_executions(engine.owner, 1, LEASE)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StorageError) as renewing:
                await engine.store.renew_leases(engine.owner, {held: epoch}, LEASE)
            with pytest.raises(StorageError) as claiming:
                await engine.store.claim_executions("other", 1, LEASE)
            beats = timedelta(seconds=0.15)  # one every 50 ms
            keeper = LeaseKeeper(engine.store, engine.owner, beats, Clock(), lambda _: None)
            keeper.hold(held, epoch)
            keeper.start()
            async with asyncio.timeout(10):
                while not caplog.records:
                    await asyncio.sleep(0.01)
            await keeper.stop()
        finally:
            holder.close()
        assert await engine.store.renew_leases(engine.owner, {held: epoch}, LEASE) == {held}
    assert str(renewing.value) == f"the database could not renew the leases: {LOCKED}"
    assert isinstance(renewing.value.__cause__, OperationalError)  # the driver's, kept
    assert "database is locked" in str(claiming.value)
    assert database_trouble(renewing.value) and database_trouble(claiming.value)
    assert not database_trouble(ValueError("a bug"))
    said = caplog.records[0]
    assert said.levelno == logging.WARNING and said.exc_info is None
    assert said.getMessage() == (
        "lease heartbeat failed (StorageError: the database could not renew the leases: "
        f"{LOCKED}); the next one tries again"
    )


async def test_a_drive_cancelled_midway_releases_its_execution(engine: Engine) -> None:
    """Its finally let go of the heartbeat first, whose stop took the cancel the drive had
    already taken for a new one and raised it again: the release after it never ran, and
    the execution stayed leased to a live owner (another Engine in this process was
    refused it: "being run by another Engine in this process")."""
    workflow = engine.load_text(
        "name: d\nsteps: [{id: a, type: sys.delay, input: {duration: 30s}}]\n"
    )
    execution_id = await engine.start(workflow)
    drive = asyncio.create_task(engine.drive(execution_id))
    for _ in range(500):
        if any(e["kind"] == "step.suspended" for e in await engine.events(execution_id)):
            break
        await asyncio.sleep(0.01)
    drive.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drive
    row = await engine.store.get_execution(execution_id)
    assert row is not None and row["lease_owner"] is None  # claimable at once
    async with Engine(engine.db_url, registry=engine.registry) as other:
        taken = await other.store.acquire_lease_row(execution_id, other.owner, LEASE)
        assert taken is not None
