"""The lease heartbeat (runtime.leases): stopping it never swallows its caller's cancel."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from flowledger import Engine
from flowledger.errors import StorageError
from flowledger.runtime.leases import LeaseKeeper, database_trouble
from flowledger.timeutil import Clock


async def test_stop_ends_the_heartbeat_and_lets_a_cancel_of_its_caller_through(
    engine: Engine,
) -> None:
    keeper = LeaseKeeper(engine.store, "me", timedelta(minutes=5), Clock(), lambda _: None)
    keeper.start()
    heartbeat = keeper._task
    assert heartbeat is not None
    went_on = asyncio.Event()

    async def let_go() -> None:  # as Engine._drive lets go of its last execution
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


def test_a_locked_database_is_trouble_to_tell_in_a_line_not_a_bug(tmp_path: Path) -> None:
    """A heartbeat that met a lock held past the busy timeout logged two tracebacks; the
    database's conditions are said in a line, anything else keeps its traceback."""
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            waiter.execute("INSERT INTO t VALUES (1)")
    finally:
        waiter.close()
        holder.close()
    assert database_trouble(caught.value)
    assert database_trouble(StorageError("the database is unreachable"))
    assert not database_trouble(ValueError("a bug"))
