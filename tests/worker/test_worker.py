"""The worker loop in-process: claiming, parking on distant timers, draining on stop."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from datetime import timedelta

import pytest

from flowledger import Engine, StepRegistry
from flowledger.worker.worker import Worker, WorkerOptions
from tests.runtime.steps_for_tests import Recorder

FAST = WorkerOptions(concurrency=4, lease=timedelta(seconds=3), park_after=0.3, max_idle=0.05)


async def _wait_for(engine: Engine, execution_id: str, status: str, seconds: float = 20) -> dict:  # type: ignore[type-arg]
    for _ in range(int(seconds / 0.02)):
        doc = await engine.get_execution(execution_id)
        if doc["runtimeStatus"] == status:
            return doc
        await asyncio.sleep(0.02)
    raise AssertionError(f"execution never became {status}: {doc['runtimeStatus']}")


async def test_a_worker_runs_queued_executions(db_url: str, registry: StepRegistry) -> None:
    async with Engine(db_url, registry=registry) as engine:
        workflow = engine.load_text(
            "name: q\nsteps: [{id: a, type: test.flaky, input: {name: q}}]\n"
        )
        ids = [await engine.start(workflow) for _ in range(6)]
        worker = Worker(engine, FAST)
        task = asyncio.create_task(worker.run())
        for execution_id in ids:
            await _wait_for(engine, execution_id, "Completed")
            # Its last round released the lease (nothing else does any more): at once.
            row = await engine.store.get_execution(execution_id)
            assert row is not None and row["lease_owner"] is None
            assert row["lease_expires_at"] is None
        worker.stop()
        await task
        assert worker.completed == 6


async def test_distant_timers_are_parked_not_held(db_url: str, registry: StepRegistry) -> None:
    async with Engine(db_url, registry=registry) as engine:
        workflow = engine.load_text(
            "name: park\nsteps:\n  - {id: nap, type: sys.delay, input: {duration: 1500ms}}\n"
            "  - {id: after, type: test.flaky, input: {name: after}}\n"
        )
        execution_id = await engine.start(workflow)
        worker = Worker(engine, FAST)
        task = asyncio.create_task(worker.run())
        parked = False
        for _ in range(200):
            row = await engine.store.get_execution(execution_id)
            assert row is not None
            if (
                row["runtime_status"] == "InProgress"
                and row["lease_owner"] is None
                and row["wake_at"]
            ):
                parked = True
                break
            await asyncio.sleep(0.01)
        assert parked, "the execution was never released while it slept"
        # Nobody runs it: its row's progress is exact (runtime.journal settles it).
        assert row["event_seq"] == await engine.store.last_event_seq(execution_id)
        assert row["current_state_name"] == "nap"
        await _wait_for(engine, execution_id, "Completed")
        worker.stop()
        await task


async def test_stop_drains_running_steps_and_another_worker_finishes(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    text = textwrap.dedent(
        """
        name: drain
        steps:
          - {id: first, type: test.slow, input: {seconds: 0.4, name: first}}
          - {id: second, type: test.flaky, input: {name: second}}
        """
    )
    async with Engine(db_url, registry=registry) as engine:
        execution_id = await engine.start(engine.load_text(text))
        worker = Worker(engine, FAST)
        task = asyncio.create_task(worker.run())
        while recorder.calls["first"] == 0:
            await asyncio.sleep(0.01)
        worker.stop()  # what SIGTERM does
        await task
        doc = await engine.get_execution(execution_id)
        first = [s for s in doc["steps"].values() if s["stepId"] == "first"]
        assert [s["status"] for s in first] == ["Completed"]  # finished and recorded, not lost
        assert doc["runtimeStatus"] == "InProgress"
        row = await engine.store.get_execution(execution_id)
        assert row is not None and row["lease_owner"] is None  # released for others at once
        second = Worker(engine, FAST)
        task = asyncio.create_task(second.run())
        await _wait_for(engine, execution_id, "Completed")
        second.stop()
        await task
    assert recorder.calls == {"first": 1, "second": 1}


async def test_two_workers_never_run_the_same_execution(
    db_url: str, registry: StepRegistry, recorder: Recorder
) -> None:
    async with (
        Engine(db_url, registry=registry) as one,
        Engine(db_url, registry=registry) as two,
    ):
        workflow = one.load_text(
            "name: shared\nsteps: [{id: a, type: test.slow, input: {seconds: 0.01, name: '{{ execution.id }}'}}]\n"
        )
        ids = [await one.start(workflow) for _ in range(20)]
        workers = [Worker(one, FAST), Worker(two, FAST)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        for execution_id in ids:
            await _wait_for(one, execution_id, "Completed")
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
    assert sorted(recorder.calls) == sorted(ids)
    assert set(recorder.calls.values()) == {1}
    assert sum(w.completed for w in workers) == 20


async def test_a_settle_on_the_worker_s_engine_joins_the_worker_s_run(
    db_url: str, registry: StepRegistry, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Tour 23 F2: a worker registered its run with the engine only after its first
    await past the claim; a settle on the same engine in that window found nothing
    running here, took the lease from under the worker (the same owner may take its
    own), and the worker logged ERROR "no longer owned by this process" and ran the
    execution again later. A settle joins the worker's run, as the README promises."""
    workflow_text = (
        "name: joined\nsteps:\n  - {id: a, type: test.flaky, input: {name: '{{ input.n }}'}}\n"
        "  - {id: nap, type: sys.delay, input: {duration: 100ms}}\n"
    )
    caplog.set_level(logging.ERROR, logger="flowledger")
    async with Engine(db_url, registry=registry) as engine:
        workflow = engine.load_text(workflow_text)
        worker = Worker(engine, WorkerOptions(concurrency=8, max_idle=0.05))
        task = asyncio.create_task(worker.run())
        try:
            for round_ in range(3):
                ids = [await engine.start(workflow, {"n": f"{round_}-{i}"}) for i in range(3)]
                docs = await asyncio.gather(*(engine.settle(i, wait=10) for i in ids))
                assert [d["runtimeStatus"] for d in docs] == ["Completed"] * 3
        finally:
            worker.stop()
            await task
    assert sorted(recorder.calls.values()) == [1] * 9
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
