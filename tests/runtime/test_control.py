"""runtime.control: how long a control verb waits for the process that holds the
execution (both databases; the holder is another engine, as another process would be)."""

from __future__ import annotations

import asyncio

import pytest

from flowledger import Engine, StepRegistry
from flowledger.app import App, CancelExecution
from flowledger.runtime import inbox
from flowledger.runtime.runner import ExecutionRunner
from tests.raw_sql import run_sql
from tests.runtime.steps_for_tests import Recorder
from tests.runtime.support import running_worker, step_status, wait_for_status, wait_until

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


QUICK_CHILD = """
name: quick-child
steps:
  - {id: hello, type: sys.transform, input: {value: hi}}
"""
#: A child on one branch, and a step that keeps the parent busy (never parked) on another.
CHILD_BESIDE_A_SLOW_STEP = """
name: child-beside-a-slow-step
steps:
  - {id: call, type: sys.sub_workflow, input: {workflow: quick-child}}
  - {id: after, type: sys.transform, input: {value: done}, after: [call]}
  - {id: nap, type: test.slow, input: {seconds: 120}, after: []}
"""


async def test_a_childs_end_written_here_reaches_its_parent_run_here_at_once(
    engine: Engine, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that ran both a parent and its child: the child's end, a signal its last
    round wrote, reached the parent at the parent's next look for signals (a second
    later; here an hour), though this very process had written it. The store tells the
    engine of every signal it commits (Store.hear_signals), on both databases."""
    monkeypatch.setattr(inbox, "POLL_INTERVAL", 3600.0)
    await engine.push(engine.load_text(QUICK_CHILD))
    async with running_worker(engine):
        parent = await engine.start(engine.load_text(CHILD_BESIDE_A_SLOW_STEP))
        doc = await wait_until(engine, parent, lambda d: step_status(d, "after") is not None)
        assert step_status(doc, "call") == "Completed"
        assert step_status(doc, "nap") == "InProgress"  # busy all along: never parked
        await engine.cancel(parent)
        await wait_for_status(engine, parent, "Cancelled")


#: A question on one branch, and a step that keeps the run going on another.
ASKS_BESIDE_A_SLOW_STEP = """
name: asks-beside-a-slow-step
steps:
  - {id: ask, type: sys.wait_for_input, input: {prompt: "go?"}}
  - {id: nap, type: test.slow, input: {seconds: 120}, after: []}
"""


async def test_a_signal_sent_here_pokes_its_run_here_once_on_postgresql(
    pg_url: str, registry: StepRegistry, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An input sent by the process that runs the execution poked its run twice: once as
    it was sent, once more as the process heard its own NOTIFY. The NOTIFY carries the
    sending store's mark, and its listener leaves its own out. PostgreSQL delivers
    notifications in commit order: once the holder heard a later signal from another
    process, it had heard its own input's."""
    monkeypatch.setattr(inbox, "POLL_INTERVAL", 3600.0)
    poked: list[str] = []
    poke = ExecutionRunner.poke

    def counted(runner: ExecutionRunner) -> None:
        poked.append(runner.id)
        poke(runner)

    monkeypatch.setattr(ExecutionRunner, "poke", counted)
    async with Engine(pg_url, registry=registry) as holder, Engine(pg_url) as asker:
        workflow = holder.load_text(ASKS_BESIDE_A_SLOW_STEP)
        mine, theirs = [await holder.start(workflow, hold=True) for _ in "ab"]
        driving = [asyncio.create_task(holder.drive(e, document=False)) for e in (mine, theirs)]
        listening = 0
        for _ in range(500):
            listening = await asyncio.to_thread(run_sql, pg_url, LISTENING)
            if recorder.running == 2 and listening:
                break
            await asyncio.sleep(0.02)
        assert listening, "the holder does not listen for signals"
        await holder.submit_input(mine, "ask", {"go": True})
        await asker.submit_input(theirs, "ask", {"go": True})
        for _ in range(3000):  # heard from the other process (its poll: in an hour)
            if theirs in poked:
                break
            await asyncio.sleep(0.02)
        assert poked.count(theirs) == 1
        assert poked.count(mine) == 1
        for execution_id in (mine, theirs):
            await holder.cancel(execution_id)
        done = await asyncio.wait_for(asyncio.gather(*driving), 60)
    assert [d["runtimeStatus"] for d in done] == ["Cancelled", "Cancelled"]
