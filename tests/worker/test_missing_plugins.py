"""A worker without a workflow's plugins leaves its executions to the workers that have
them: its claims skip that workflow version, and what it took before it knew is handed
back at once, unparked, with one warning."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, step_type
from flowledger.app import App
from flowledger.app.models import GetExecution
from flowledger.storage import Row
from flowledger.worker.worker import WorkerOptions
from tests.runtime.support import running_worker

FAST = WorkerOptions(concurrency=2, lease=timedelta(seconds=3), park_after=0.3, max_idle=0.05)
PLUG_ONLY = "name: plug-only\nsteps:\n  - {id: a, type: acme.elsewhere, input: {n: 1}}\n"
ASK_FIRST = """\
name: ask-first
steps:
  - {id: ask, type: sys.wait_for_input, input: {prompt: go?}}
  - {id: a, type: acme.elsewhere, input: {n: 1}, after: [ask]}
"""


class In(BaseModel):
    n: int = 0


@step_type("acme.elsewhere")
async def elsewhere(data: In, ctx: StepContext) -> dict[str, int]:
    return {"n": data.n}


def with_plugin() -> StepRegistry:
    registry = StepRegistry.with_builtins()
    registry.register(elsewhere)
    return registry


async def row_when(engine: Engine, execution_id: str, ready: Callable[[Row], bool]) -> Row:
    """The execution's row once ``ready`` says so (within 10 s)."""
    async with asyncio.timeout(10):
        while True:
            row = await engine.store.get_execution(execution_id)
            assert row is not None
            if ready(row):
                return row
            await asyncio.sleep(0.01)


def handed_back(row: Row) -> bool:
    return row["lease_epoch"] >= 1 and row["lease_owner"] is None


async def test_a_worker_without_the_plugins_leaves_their_executions_to_one_with_them(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """It claimed them, failed (unknown step type), and parked each for 1 s, then 2 s, … up
    to a minute, with an error each time: the worker that had the plugins waited that long."""
    caplog.set_level(logging.INFO, logger="flowledger.worker.worker")
    async with Engine(db_url, registry=with_plugin()) as able, Engine(db_url) as lacking:
        workflow = able.load_text(PLUG_ONLY)
        first = await able.start(workflow)
        async with running_worker(lacking, FAST):
            row = await row_when(lacking, first, handed_back)
            assert row["wake_at"] is None and row["runtime_status"] == "NotStarted"  # not parked
            later = await able.start(workflow)
            await asyncio.sleep(0.5)  # ten turns of its claims at least (max_idle 0.05)
            for execution_id, epoch in ((first, 1), (later, 0)):  # neither claimed again
                row = await row_when(lacking, execution_id, lambda _: True)
                assert (row["lease_epoch"], row["lease_owner"], row["wake_at"]) == (
                    epoch,
                    None,
                    None,
                )
            begun = asyncio.get_running_loop().time()
            async with running_worker(able, FAST):
                for execution_id in (first, later):
                    row = await row_when(
                        able, execution_id, lambda r: r["completed_at"] is not None
                    )
                    assert row["runtime_status"] == "Completed"
            assert asyncio.get_running_loop().time() - begun < 5  # no park waited for
    said = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert said[0].levelno == logging.WARNING and said[0].exc_info is None
    message = said[0].getMessage()
    assert "plug-only v1" in message and "(acme.elsewhere)" in message, message
    assert "--plugin" in message and "stay queued" in message, message


async def test_a_worker_warns_of_a_workflow_its_process_found_unrunnable_first(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A serve node compiles what it starts by name before its worker claims anything: the
    worker's claims then skipped the executions and nothing said why they stayed queued."""
    caplog.set_level(logging.INFO, logger="flowledger.worker.worker")
    async with Engine(db_url, registry=with_plugin()) as able, Engine(db_url) as lacking:
        version = await able.register(able.load_text(PLUG_ONLY))
        workflow = await lacking.workflow_to_read(version.id)  # as a start by name does
        assert not workflow.runnable and version.id in lacking.unrunnable
        execution_id = await lacking.start(workflow)
        async with running_worker(lacking, FAST):
            await asyncio.sleep(0.3)
        row = await row_when(lacking, execution_id, lambda _: True)
        assert (row["lease_epoch"], row["runtime_status"]) == (0, "NotStarted")  # never taken
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and "plug-only v1" in said[0] and "stay queued" in said[0], said


async def test_input_that_arrived_stays_due_for_the_worker_with_the_plugins(db_url: str) -> None:
    """An execution waiting for a person is claimable once its input arrives (its wake-up
    time has come): handed back with no wake-up time, it would have waited for a signal
    that had already come."""
    async with Engine(db_url, registry=with_plugin()) as able, Engine(db_url) as lacking:
        doc = await able.run(able.load_text(ASK_FIRST), {})
        assert doc["runtimeStatus"] == "AwaitingUserInput"
        execution_id = doc["id"]
        await able.submit_input(execution_id, "ask", {"ok": True})
        taken = (await row_when(able, execution_id, lambda _: True))["lease_epoch"]
        async with running_worker(lacking, FAST):
            row = await row_when(
                lacking, execution_id, lambda r: r["lease_epoch"] > taken and not r["lease_owner"]
            )
            await asyncio.sleep(0.5)
            again = await row_when(lacking, execution_id, lambda _: True)
        assert row["runtime_status"] == again["runtime_status"] == "AwaitingUserInput"
        assert again["lease_epoch"] == row["lease_epoch"]  # claimed once, not again
        assert again["wake_at"] is not None and again["wake_at"] <= await able.store.db_now()
        async with running_worker(able, FAST):
            row = await row_when(able, execution_id, lambda r: r["completed_at"] is not None)
        assert row["runtime_status"] == "Completed"


async def test_show_and_watch_learn_which_worker_refused_an_execution_and_why(
    db_url: str,
) -> None:
    """Tour 25: ``executions show`` said "queued for a worker" and ``watch`` "no process
    has taken it yet" while a worker ran and refused it; only that worker's log said why."""
    async with Engine(db_url, registry=with_plugin()) as able, Engine(db_url) as lacking:
        execution_id = await able.start(able.load_text(PLUG_ONLY))
        async with App(db_url) as app:
            before = await app.executions.runner(GetExecution(id=execution_id))
            assert (before.state, before.refusal) == ("queued", None)
            async with running_worker(lacking, FAST):
                await row_when(lacking, execution_id, handed_back)
                async with asyncio.timeout(10):  # recorded before it is handed back, or just after
                    while (
                        found := await app.executions.runner(GetExecution(id=execution_id))
                    ).refusal is None:
                        await asyncio.sleep(0.01)
        assert found.state == "queued" and found.refusal is not None
        assert found.refusal.missing == ("acme.elsewhere",)
        assert found.refusal.worker == lacking.owner
        host, pid = lacking.owner.split(":")[:2]
        assert found.refusal.worker_words == f"{host.partition('~')[0]}:{pid}"
        assert abs(found.refusal.at - lacking.clock.now()) < timedelta(minutes=1)
