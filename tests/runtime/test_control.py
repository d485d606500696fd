"""runtime.control: how long a control verb waits for the process that holds the
execution (both databases; the holder is another engine, as another process would be)."""

from __future__ import annotations

import asyncio

import pytest

from flowledger import Engine
from flowledger.app import App, CancelExecution
from flowledger.runtime import inbox
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
