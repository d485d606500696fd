"""runtime.control: how long a control verb waits for the process that holds the
execution (both databases; the holder is another engine, as another process would be)."""

from __future__ import annotations

import asyncio

import pytest

from flowledger import Engine, StepRegistry
from flowledger.app import App, CancelExecution
from flowledger.runtime import inbox
from tests.raw_sql import run_sql
from tests.runtime.steps_for_tests import Recorder

SLOW = """
name: slow-one
steps:
  - {id: nap, type: test.slow, input: {seconds: 120}}
"""


async def test_a_settled_cancel_waits_for_the_holders_next_look_for_signals(
    engine: Engine, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch of a live holder was a fixed 5 s, whatever the interval the holder
    looks for signals at: one looking less often than that (here every 6 s) took the
    cancel after the command had given up, answering it pending (``exit 4``)."""
    monkeypatch.setattr(inbox, "POLL_INTERVAL", 6.0)
    app = App(engine=engine)
    async with Engine(engine.db_url, registry=engine.registry) as holder:
        execution_id = await holder.start(holder.load_text(SLOW), hold=True)
        driving = asyncio.create_task(holder.drive(execution_id))
        while not recorder.running:  # it holds the execution, its step under way
            await asyncio.sleep(0.02)
        request = CancelExecution(id=execution_id, reason="not needed", settle=True)
        answer = await app.executions.cancel(request)
        assert answer["runtimeStatus"] == "Cancelled", answer.get("pendingSignals")
        assert "pendingSignals" not in answer
        assert (await driving)["runtimeStatus"] == "Cancelled"  # the holder took it


#: The holder's connection that hears signals, once it listens (storage.postgres).
LISTENING = (
    "SELECT 1 FROM pg_stat_activity WHERE application_name = 'flowledger-signals' "
    "AND datname = current_database() AND state = 'idle' AND left(query, 6) = 'LISTEN'"
)


async def test_a_holder_on_postgresql_takes_a_cancel_at_once_not_at_its_poll(
    pg_url: str, registry: StepRegistry, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel from another process was taken at the holder's next look for signals (up
    to a second later): its NOTIFY makes the holder look at once. Here the holder would
    look again only in an hour."""
    monkeypatch.setattr(inbox, "POLL_INTERVAL", 3600.0)
    async with Engine(pg_url, registry=registry) as holder, Engine(pg_url) as asker:
        execution_id = await holder.start(holder.load_text(SLOW), hold=True)
        driving = asyncio.create_task(holder.drive(execution_id, document=False))
        listening = 0
        for _ in range(500):
            listening = await asyncio.to_thread(run_sql, pg_url, LISTENING)
            if recorder.running and listening:
                break
            await asyncio.sleep(0.02)
        assert listening, "the holder does not listen for signals"
        await asker.cancel(execution_id, reason="not needed")
        done = await asyncio.wait_for(driving, 60)
    assert done["runtimeStatus"] == "Cancelled"
