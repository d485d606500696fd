"""A custom step parked by Suspend(until=None) waits for an input from outside (a callback:
a job submitted elsewhere, its webhook): Engine.submit_input wakes it, its resume reads the
data as state["input"], and the execution stays InProgress meanwhile. Tour 23 F1: such a
step failed its execution at once, "the execution has nothing left to run but is not
finished", and submit_input then said the execution was Failed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, Suspend, step_type
from flowledger.codec import loads
from flowledger.errors import ConflictError, NotFoundError
from tests.raw_sql import run_sql
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
        assert loads(step["state"]) == {
            "ticket": "t-5",
            "input": "not the engine's",  # the handler's own, kept (runtime.reserved)
            "__flowledger__": {"wait": {"outside": 0}},
        }
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


# -- a timed wait takes an input too --------------------------------------------------------


class Poll(BaseModel):
    ticket: str
    #: Until when it waits, from when it parks.
    ms: int = 60_000


async def _polled(data: Poll, ctx: StepContext, state: Mapping[str, Any]) -> dict[str, Any]:
    # An input woke it (state["input"]), or its time came: then it would poll the job.
    woke = "input" if "input" in state else "time"
    return {"ticket": state["ticket"], "by": woke, "input": state.get("input")}


@step_type("test.polls", resume=_polled)
async def polls(data: Poll, ctx: StepContext) -> Suspend:
    until = datetime.now(UTC) + timedelta(milliseconds=data.ms)
    return Suspend(until=until, state={"ticket": data.ticket})


def _polling(ticket: str, ms: int = 60_000) -> str:
    return f"name: poll\nsteps: [{{id: job, type: test.polls, input: {{ticket: {ticket}, ms: {ms}}}}}]\n"


async def test_a_timed_wait_is_woken_by_an_input_or_else_by_its_time(engine: Engine) -> None:
    """Tour 23: Suspend(until=t) was not woken by submit_input, which said the step was
    "not waiting for input (it is InProgress)". Decision: the first to come, the input or
    the time, wakes it, as a callback with a poll after a while (its resume tells which
    by state["input"]); after its time, an input is too late."""
    engine.registry.register(polls)
    early = await engine.start(engine.load_text(_polling("p-1")))
    timed = await engine.start(engine.load_text(_polling("p-2", ms=300)))
    drives = [asyncio.create_task(engine.drive(i)) for i in (early, timed)]
    await _parked(engine, early)
    await engine.submit_input(early, "job", {"status": "done"}, submitted_by="hook")
    woken, waited = await asyncio.wait_for(asyncio.gather(*drives), 10)
    assert woken["runtimeStatus"] == "Completed", woken["error"]
    assert woken["output"] is None and latest(woken, "job")["outputData"] == {
        "ticket": "p-1",
        "by": "input",
        "input": {"status": "done"},
    }
    assert latest(waited, "job")["outputData"] == {"ticket": "p-2", "by": "time", "input": None}
    with pytest.raises(ConflictError, match="is Completed; it waits for no input"):
        await engine.submit_input(timed, "job", {})
    kinds = [e["kind"] for e in await engine.events(early)]
    assert kinds.count("step.input_received") == 1 and "step.resumed" not in kinds


async def test_a_timed_wait_takes_an_input_sent_while_nobody_runs_it(
    db_url: str, registry: StepRegistry
) -> None:
    """The input is kept with the execution until a process runs it again: it resumes
    the step with it then, its time not waited for."""
    registry.register(polls)
    async with Engine(db_url, registry=registry) as engine:
        execution_id = await engine.start(engine.load_text(_polling("p-3")))
        task = asyncio.create_task(engine.drive(execution_id))
        await _parked(engine, execution_id)
        task.cancel()  # what a crash looks like to the database: no more writes
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.submit_input(execution_id, "job", {"status": "late"})
        with pytest.raises(ConflictError, match="has been answered already"):
            await engine.submit_input(execution_id, "job", {"status": "twice"})
    async with Engine(db_url, registry=registry) as engine:
        doc = await asyncio.wait_for(engine.drive(execution_id), 10)
        assert doc["runtimeStatus"] == "Completed", doc["error"]
        assert latest(doc, "job")["outputData"]["input"] == {"status": "late"}


async def test_a_delay_waits_for_its_time_and_says_so_to_an_input(engine: Engine) -> None:
    """sys.delay's wait takes no input: it said "not waiting for input (it is
    InProgress)", which read as a step that is not waiting at all."""
    text = "name: nap\nsteps: [{id: nap, type: sys.delay, input: {duration: 60s}}]\n"
    execution_id = await engine.start(engine.load_text(text))
    drive = asyncio.create_task(engine.drive(execution_id))
    await _parked(engine, execution_id)
    with pytest.raises(
        ConflictError, match=r"'nap' .* waits for a time \(until .*\), not for input"
    ):
        await engine.submit_input(execution_id, "nap", {})
    drive.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await drive


# -- the engine's part of the state -----------------------------------------------------------


async def _owns_names_resume(
    data: Poll, ctx: StepContext, state: Mapping[str, Any]
) -> dict[str, Any]:
    return {"state": dict(state), "n": ctx.variables.get("n")}


@step_type("test.owns_names", resume=_owns_names_resume)
async def owns_names(data: Poll, ctx: StepContext) -> Suspend:
    ctx.variables.apply("n", "increment", 1)  # kept with the parked step, the engine's
    mine = {"variables": ["v"], "wait": "input", "input": "mine", "ticket": data.ticket}
    return Suspend(until=datetime.now(UTC) + timedelta(milliseconds=data.ms), state=mine)


async def test_a_handler_s_state_may_use_the_names_the_engine_used(engine: Engine) -> None:
    """The engine kept its marks in the state under "variables", "wait" and "input", and
    dropped a handler's own under those names; now under one key of its own."""
    engine.registry.register(owns_names)
    text = (
        "name: names\nvariables: {n: 0}\n"
        "steps: [{id: job, type: test.owns_names, input: {ticket: o-1, ms: 300}}]\n"
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert latest(doc, "job")["outputData"] == {
        "state": {"variables": ["v"], "wait": "input", "input": "mine", "ticket": "o-1"},
        "n": 1,
    }
    assert doc["variables"] == {"n": 1}
    statuses = [e["status"] for e in await engine.events(doc["id"]) if e["stepExecutionId"] is None]
    assert "AwaitingUserInput" not in statuses  # its "wait": "input" is not a person's


async def test_a_step_parked_by_an_earlier_build_resumes_after_the_upgrade(
    db_url: str, registry: StepRegistry
) -> None:
    """Rows an earlier build wrote keep the engine's marks under the state's own "wait"
    and "input": they are read as written (one waiting, one woken whose resume was cut),
    and the step's next write is in the new shape."""
    async with Engine(db_url, registry=registry) as engine:
        waiting = await engine.start(engine.load_text(_workflow("t-8", inputs=2)))
        woken = await engine.start(engine.load_text(_workflow("t-9")))
        for execution_id in (waiting, woken):
            task = asyncio.create_task(engine.drive(execution_id))
            await _parked(engine, execution_id)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    earlier = {
        waiting: {"ticket": "t-8", "wait": {"outside": 0}},
        woken: {"ticket": "t-9", "wait": {"woke": 1}, "input": {"n": "before"}},
    }
    for execution_id, state in earlier.items():
        sql = "UPDATE step_executions SET state = :s WHERE execution_id = :e"
        assert run_sql(db_url, sql, s=json.dumps(state), e=execution_id) == 1
    async with Engine(db_url, registry=registry) as engine:
        await engine.submit_input(waiting, "job", {"n": 1})
        drive = asyncio.create_task(engine.drive(waiting))
        await _parked(engine, waiting, times=2)  # its resume parked for the next input
        [step] = await engine.store.get_step_executions(waiting)
        assert loads(step["state"]) == {
            "ticket": "t-8",
            "got": [{"n": 1}],
            "__flowledger__": {"wait": {"outside": 1}},
        }
        await engine.submit_input(waiting, "job", {"n": 2})
        done = await asyncio.wait_for(drive, 10)
        assert done["output"] == [{"n": 1}, {"n": 2}]
        doc = await asyncio.wait_for(engine.drive(woken), 10)
        assert doc["runtimeStatus"] == "Completed", doc["error"]
        assert doc["output"] == [{"n": "before"}]
