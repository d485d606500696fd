"""Who holds an execution: one Engine driving it twice, closing while it drives, a second
event loop, and a settle meeting a holder that is gone (tours 18A and 18C)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.errors import EngineClosedError, EngineLoopError, HeldElsewhereError
from flowledger.runtime.orphans import this_host
from tests.runtime.steps_for_tests import Recorder

SLOW_THEN_ONE = """
name: slow_then_one
steps:
  - {id: a, type: test.slow, input: {seconds: 0.3, name: a}}
  - {id: b, type: test.flaky, input: {name: b}}
"""

BLOCKED = """
name: blocked
steps:
  - {id: a, type: test.slow, input: {name: a, block_first: true}}
  - {id: b, type: test.flaky, input: {name: b}}
"""


def _attempts(doc: dict[str, Any]) -> list[tuple[str, int, str]]:
    return sorted((s["stepId"], s["attempt"], s["status"]) for s in doc["steps"].values())


async def _running(recorder: Recorder, name: str) -> None:
    async with asyncio.timeout(30):
        while not recorder.calls[name]:
            await asyncio.sleep(0.01)


async def test_two_drives_of_one_execution_on_one_engine_run_each_step_once(
    engine: Engine, recorder: Recorder
) -> None:
    """Two drive() and a settle() at once, as two request handlers would: the later ones
    join the first. Before, each took the lease from the other (same owner): the step ran
    twice, its first attempt recorded as cut by a stopped process, and a drive raised."""
    workflow = engine.load_text(SLOW_THEN_ONE)
    for _ in range(2):
        recorder.calls.clear()
        execution_id = await engine.start(workflow)
        async with asyncio.timeout(60):
            docs = await asyncio.gather(
                engine.drive(execution_id), engine.drive(execution_id), engine.settle(execution_id)
            )
        assert [d["runtimeStatus"] for d in docs] == ["Completed"] * 3
        assert dict(recorder.calls) == {"a": 1, "b": 1}
        assert _attempts(docs[0]) == [("a", 1, "Completed"), ("b", 1, "Completed")]
        events = await engine.events(execution_id)
        assert not [e for e in events if e["status"] == "Failed"]


async def test_a_drive_joining_a_cancelled_one_carries_it_on(
    engine: Engine, recorder: Recorder
) -> None:
    """The first drive is cancelled by its caller (Ctrl-C): one that joined it goes on."""
    execution_id = await engine.start(engine.load_text(BLOCKED))
    first = asyncio.create_task(engine.drive(execution_id))
    await _running(recorder, "a")
    second = asyncio.create_task(engine.drive(execution_id))
    await asyncio.sleep(0.3)
    # It waits for the first rather than taking the lease and running 'a' again.
    assert not second.done() and dict(recorder.calls) == {"a": 1}
    first.cancel()
    async with asyncio.timeout(60):
        doc = await second
    assert doc["runtimeStatus"] == "Completed"
    assert dict(recorder.calls) == {"a": 2, "b": 1}  # a's first attempt was cut, by us


async def test_another_engine_in_this_process_is_named_as_such(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    async with Engine(db_url, registry=registry) as one, Engine(db_url, registry=registry) as two:
        execution_id = await one.start(one.load_text(BLOCKED))
        task = asyncio.create_task(one.drive(execution_id))
        await _running(recorder, "a")
        with pytest.raises(HeldElsewhereError) as refused:
            await two.drive(execution_id)
        assert "another Engine in this process" in str(refused.value)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_close_while_driving_gives_the_execution_back(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    """close() drains what the engine drives: the running step finishes and is recorded,
    nothing new starts, the lease is released, and drive() says why it stopped. Before, the
    lease stayed held: a fresh engine was told another process ran it, for ~35 s."""
    engine = Engine(db_url, registry=registry)
    await engine.open()
    execution_id = await engine.start(engine.load_text(SLOW_THEN_ONE))
    driving = asyncio.create_task(engine.drive(execution_id))
    await _running(recorder, "a")
    await engine.close()
    with pytest.raises(EngineClosedError, match="closed while it ran execution"):
        await driving
    assert dict(recorder.calls) == {"a": 1}
    async with Engine(db_url, registry=registry) as fresh:
        doc = await fresh.drive(execution_id)  # at once: no HeldElsewhereError
    assert doc["runtimeStatus"] == "Completed"
    assert _attempts(doc) == [("a", 1, "Completed"), ("b", 1, "Completed")]


async def test_close_cancels_a_step_that_outlives_its_grace(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    engine = Engine(db_url, registry=registry)
    await engine.open()
    execution_id = await engine.start(engine.load_text(BLOCKED))
    driving = asyncio.create_task(engine.drive(execution_id))
    await _running(recorder, "a")
    async with asyncio.timeout(60):
        await engine.close(grace=0.1)
    with pytest.raises(EngineClosedError):
        await driving
    async with Engine(db_url, registry=registry) as fresh:
        doc = await fresh.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed"
    assert ("a", 2, "Completed") in _attempts(doc)


async def test_an_engine_refuses_a_second_event_loop_at_once(
    engine: Engine, recorder: Recorder
) -> None:
    """Used from two loops at once, runs hung and were left InProgress; now the other loop
    is refused at once, naming the rule, and the engine's own loop goes on."""
    workflow = engine.load_text(SLOW_THEN_ONE)
    caught: list[BaseException] = []

    def elsewhere() -> None:
        try:
            asyncio.run(engine.run(workflow))
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=elsewhere)
    mine = asyncio.create_task(engine.run(workflow))
    thread.start()
    await asyncio.to_thread(thread.join, 60)
    assert not thread.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], EngineLoopError), caught
    assert "belongs to the loop that opened it" in str(caught[0])
    async with asyncio.timeout(60):
        assert (await mine)["runtimeStatus"] == "Completed"
    assert [d["runtimeStatus"] for d in await engine.list_executions()] == ["Completed"]


def _dead_owner() -> str:
    """An owner name whose process, on this host, has ended."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    return f"{this_host()}:{ended.stdout.strip()}:gone"


async def test_settle_takes_over_an_execution_whose_holder_died(
    engine: Engine, recorder: Recorder
) -> None:
    """`executions cancel` of an execution held by a killed worker watched it for 30 s,
    then failed, leaving it InProgress; the dead pid proves nobody runs it."""
    execution_id = await engine.start(engine.load_text(SLOW_THEN_ONE))
    held = await engine.store.acquire_lease(execution_id, _dead_owner(), timedelta(minutes=5))
    assert held is not None
    await engine.cancel(execution_id, reason="stop")
    async with asyncio.timeout(60):
        doc = await engine.settle(execution_id, wait=2)
    assert doc["runtimeStatus"] == "Cancelled"


async def _held_elsewhere(engine: Engine, lease: timedelta) -> str:
    """A new execution leased for ``lease`` to a process on another machine."""
    execution_id = await engine.start(engine.load_text(SLOW_THEN_ONE))
    elsewhere = "another-machine~0000:4242:x"
    assert await engine.store.acquire_lease(execution_id, elsewhere, lease) is not None
    return execution_id


async def test_settle_takes_over_once_the_holders_lease_lapses(
    engine: Engine, recorder: Recorder
) -> None:
    """A holder on another machine cannot be seen: its lease lapsing is the proof."""
    execution_id = await _held_elsewhere(engine, timedelta(seconds=1))
    async with asyncio.timeout(60):
        doc = await engine.settle(execution_id, wait=20)
    assert doc["runtimeStatus"] == "Completed"
    assert dict(recorder.calls) == {"a": 1, "b": 1}


async def test_settle_leaves_a_live_holder_its_execution(
    engine: Engine, recorder: Recorder
) -> None:
    execution_id = await _held_elsewhere(engine, timedelta(minutes=5))
    await engine.cancel(execution_id, reason="stop")
    doc = await engine.settle(execution_id, wait=0.3)
    assert doc["runtimeStatus"] == "NotStarted" and not recorder.calls
    with pytest.raises(HeldElsewhereError, match=r"another process \(pid 4242 on host"):
        await engine.drive(execution_id)
