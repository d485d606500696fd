"""The lease heartbeat (runtime.leases): stopping it never swallows its caller's cancel."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flowledger import Engine
from flowledger.runtime.leases import LeaseKeeper
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
