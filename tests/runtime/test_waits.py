"""A custom step parked by Suspend(until=None) waits for an input from outside (a callback:
a job submitted elsewhere, its webhook): Engine.submit_input wakes it, its resume reads the
data as state["input"], and the execution stays InProgress meanwhile. Tour 23 F1: such a
step failed its execution at once, "the execution has nothing left to run but is not
finished", and submit_input then said the execution was Failed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, Suspend, step_type
from flowledger.codec import loads
from flowledger.errors import ConflictError, NotFoundError
from tests.runtime.support import latest, running_worker, wait_until, yaml

#: How the resume of ``test.callback`` behaves, by ticket (a test sets it).
HANG_ONCE: set[str] = set()


class Job(BaseModel):
    ticket: str
    #: Park again after this many inputs came (each wait takes one).
    inputs: int = 1


async def _called_back(data: Job, ctx: StepContext, state: Mapping[str, Any]) -> Any:
    if data.ticket in HANG_ONCE:  # the process dies while the resume runs
        HANG_ONCE.discard(data.ticket)
        await asyncio.Event().wait()
    got = [*state.get("got", []), state["input"]]
    if len(got) < data.inputs:  # wait for the next callback, the state handed back
        return Suspend(until=None, state={**state, "got": got})
    return {"ticket": state["ticket"], "got": got, "keys": sorted(state)}


@step_type("test.callback", resume=_called_back)
async def callback(data: Job, ctx: StepContext) -> Suspend:
    # Submits the job elsewhere; its webhook comes back through submit_input.
    return Suspend(until=None, state={"ticket": data.ticket, "input": "not the engine's"})


def _workflow(ticket: str, *, inputs: int = 1, due: str | None = None) -> str:
    due_line = f"\n            due: {due}" if due else ""
    return yaml(
        f"""
        name: callback
        steps:
          - id: job
            type: test.callback{due_line}
            input: {{ticket: {ticket}, inputs: {inputs}}}
          - id: after
            type: sys.transform
            input: {{value: "{{{{ steps.job.output.got }}}}"}}
        output: "{{{{ steps.after.output }}}}"
        """
    )


@pytest.fixture(autouse=True)
def _registered(registry: StepRegistry) -> None:
    registry.register(callback)


async def _parked(engine: Engine, execution_id: str, times: int = 1) -> None:
    """Until the step has parked ``times`` times."""

    async def parks() -> int:
        events = await engine.events(execution_id)
        return sum(e["kind"] == "step.suspended" for e in events)

    for _ in range(1000):
        if await parks() >= times:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"execution {execution_id} never parked {times} times")


async def test_a_step_parked_without_a_time_waits_for_input_and_resumes_with_it(
    engine: Engine,
) -> None:
    execution_id = await engine.start(engine.load_text(_workflow("t-1")))
    drive = asyncio.create_task(engine.drive(execution_id))
    await _parked(engine, execution_id)
    await asyncio.sleep(0.3)  # the runner looked again: nothing else to run, still waiting
    doc = await engine.get_execution(execution_id)
    assert not drive.done()
    assert doc["runtimeStatus"] == "InProgress", doc["error"]
    assert latest(doc, "job")["status"] == "InProgress"
    assert doc["pendingInputs"] == []  # no person is asked

    with pytest.raises(NotFoundError, match=r"no step 'jbo' waiting for input \(.*: job\)"):
        await engine.submit_input(execution_id, "jbo", {})
    await engine.submit_input(execution_id, "job", {"status": "done"}, submitted_by="hook")
    done = await asyncio.wait_for(drive, 10)
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert done["output"] == [{"status": "done"}]
    # The engine's keys are its own: a state's "input" is the data that woke it.
    assert latest(done, "job")["outputData"] == {
        "ticket": "t-1",
        "got": [{"status": "done"}],
        "keys": ["input", "ticket"],
    }
    events = await engine.events(execution_id)
    [parked] = [e for e in events if e["kind"] == "step.suspended"]
    assert parked["detail"] == {"until": None, "waitsForInput": True}
    [received] = [e for e in events if e["kind"] == "step.input_received"]
    assert received["detail"]["submittedBy"] == "hook"
    statuses = [e["status"] for e in events if e["stepExecutionId"] is None]
    assert "AwaitingUserInput" not in statuses


async def test_each_wait_takes_the_first_input_sent_to_it(engine: Engine) -> None:
    execution_id = await engine.start(engine.load_text(_workflow("t-2", inputs=2)))
    drive = asyncio.create_task(engine.drive(execution_id))
    await _parked(engine, execution_id)
    drive.cancel()  # nobody runs it now: both inputs wait for the next run
    with contextlib.suppress(asyncio.CancelledError):
        await drive
    await engine.submit_input(execution_id, "job", {"n": 1})
    # A webhook delivered twice: the second finds the wait answered.
    with pytest.raises(ConflictError, match="has been answered already"):
        await engine.submit_input(execution_id, "job", {"n": "again"})
    drive = asyncio.create_task(engine.drive(execution_id))
    await _parked(engine, execution_id, times=2)  # its resume parked for the next one
    await engine.submit_input(execution_id, "job", {"n": 2})
    done = await asyncio.wait_for(drive, 10)
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert done["output"] == [{"n": 1}, {"n": 2}]


async def test_its_due_time_ends_the_wait(engine: Engine) -> None:
    workflow = engine.load_text(_workflow("t-3", due="1s"))
    answered, late = [await engine.start(workflow) for _ in range(2)]
    drives = [asyncio.create_task(engine.drive(i)) for i in (answered, late)]
    await _parked(engine, answered)
    await engine.submit_input(answered, "job", {"in": "time"})
    done, failed = await asyncio.wait_for(asyncio.gather(*drives), 10)
    assert done["runtimeStatus"] == "Completed", done["error"]
    assert failed["runtimeStatus"] == "Failed"
    assert latest(failed, "job")["error"]["message"] == "did not finish before it was due"


async def test_a_cancel_ends_the_wait(engine: Engine) -> None:
    execution_id = await engine.start(engine.load_text(_workflow("t-4")))
    drive = asyncio.create_task(engine.drive(execution_id))
    await _parked(engine, execution_id)
    await engine.cancel(execution_id, reason="not needed")
    doc = await asyncio.wait_for(drive, 10)
    assert doc["runtimeStatus"] == "Cancelled"
    with pytest.raises(ConflictError, match="is Cancelled; it waits for no input"):
        await engine.submit_input(execution_id, "job", {})


async def test_the_wait_and_the_input_survive_a_restart(
    db_url: str, registry: StepRegistry
) -> None:
    """Parked, the execution is left by the process (a crash, a close); the input is sent
    while nobody runs it, and the next process resumes the step with it. One woken whose
    resume was cut by the restart resumes again with the same input."""
    parked_id, woken_id = "", ""
    async with Engine(db_url, registry=registry) as engine:
        parked_id = await engine.start(engine.load_text(_workflow("t-5")))
        woken_id = await engine.start(engine.load_text(_workflow("t-6")))
        HANG_ONCE.add("t-6")
        for execution_id in (parked_id, woken_id):
            task = asyncio.create_task(engine.drive(execution_id))
            await _parked(engine, execution_id)
            if execution_id == woken_id:
                await engine.submit_input(execution_id, "job", {"woke": "before"})
                await _until_received(engine, execution_id)
            task.cancel()  # what a crash looks like to the database: no more writes
            with contextlib.suppress(asyncio.CancelledError):
                await task
        [step] = await engine.store.get_step_executions(parked_id)
        assert loads(step["state"]) == {"ticket": "t-5", "wait": {"outside": 0}}
        await engine.submit_input(parked_id, "job", {"woke": "after"})
        # Woken, its resume cut: the input it took is its answer.
        with pytest.raises(ConflictError, match="has been answered already"):
            await engine.submit_input(woken_id, "job", {"woke": "again"})
    async with Engine(db_url, registry=registry) as engine:
        for execution_id, data in ((parked_id, "after"), (woken_id, "before")):
            doc = await engine.drive(execution_id)
            assert doc["runtimeStatus"] == "Completed", doc["error"]
            assert doc["output"] == [{"woke": data}]
            assert [s["attempt"] for s in doc["steps"].values() if s["stepId"] == "job"] == [1]
    assert not HANG_ONCE


async def _until_received(engine: Engine, execution_id: str) -> None:
    for _ in range(1000):
        if any(e["kind"] == "step.input_received" for e in await engine.events(execution_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the input was never taken")


async def test_a_worker_parks_the_wait_and_the_input_wakes_it(engine: Engine) -> None:
    execution_id = await engine.start(engine.load_text(_workflow("t-7")))
    async with running_worker(engine):
        await _parked(engine, execution_id)

        async def released() -> bool:
            row = await engine.store.get_execution(execution_id)
            return row is not None and row["lease_owner"] is None

        for _ in range(500):  # parked: no worker holds it while it waits
            if await released():
                break
            await asyncio.sleep(0.01)
        assert await released()
        await engine.submit_input(execution_id, "job", {"by": "worker"})
        doc = await wait_until(engine, execution_id, lambda d: d["runtimeStatus"] == "Completed")
        assert doc["output"] == [{"by": "worker"}]


@step_type("test.waits_without_resume")
async def waits_without_resume(data: Job, ctx: StepContext) -> Suspend:
    return Suspend(until=None)


async def test_a_step_type_without_resume_cannot_wait_for_input(engine: Engine) -> None:
    """Its handler would run again when woken, never seeing the input: refused, saying how."""
    engine.registry.register(waits_without_resume)
    text = "name: nr\nsteps: [{id: job, type: test.waits_without_resume, input: {ticket: t}}]\n"
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    assert latest(doc, "job")["error"]["message"] == (
        "it returned Suspend(until=None), which waits for an input, but step type "
        "'test.waits_without_resume' has no resume= to read it: give @step_type a "
        "resume=fn(input, ctx, state), or Suspend a time (until=...)"
    )
