"""A workflow's ``timeout`` bounds the whole execution from its start (runtime.deadline):
what runs is cancelled and the execution fails with code ``timeout``; a waiting
execution wakes at it, a worker takes it up after a restart, time queued NotStarted
does not count, and a retry after it is refused. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.errors import ConflictError
from flowledger.storage.base import NEVER
from tests.runtime.support import latest, running_worker, wait_for_status, yaml


def _workflow(timeout: str, step: str) -> str:
    return yaml(
        f"""
        name: bounded
        timeout: {timeout}
        steps:
          - {step}
          - {{id: after, type: sys.transform, after: [wait], input: {{value: done}}}}
        output: "{{{{ steps.after.output }}}}"
        """
    )


_PERSON = "{id: wait, type: sys.wait_for_input, input: {prompt: Approve?}}"
_LONG_DELAY = "{id: wait, type: sys.delay, input: {duration: 1h}}"


def _timed_out(doc: dict[str, Any], timeout: str) -> None:
    assert doc["runtimeStatus"] == "Failed", doc["error"]
    error = doc["error"]
    assert error["code"] == "timeout"
    assert error["message"].startswith(f"the workflow's timeout ({timeout}) passed"), error
    cancelled = latest(doc, "wait")
    assert cancelled["status"] == "Cancelled"
    # The step says why it was cancelled: the timeout, not only "the execution failed".
    assert cancelled["error"]["message"].startswith(f"the workflow's timeout ({timeout})")
    assert all(s["stepId"] != "after" for s in doc["steps"].values())


async def _events(engine: Engine, execution_id: str) -> list[str]:
    return [e["kind"] for e in await engine.events(execution_id)]


async def test_a_running_step_is_cancelled_when_the_timeout_passes(engine: Engine) -> None:
    text = _workflow("500ms", "{id: wait, type: test.slow, input: {name: long, seconds: 60}}")
    doc = await asyncio.wait_for(engine.run(engine.load_text(text)), 30)
    _timed_out(doc, "500ms")
    kinds = await _events(engine, doc["id"])
    assert kinds[-2:] == ["step.cancelled", "execution.failed"]


async def test_an_execution_waiting_for_a_person_wakes_at_its_deadline(engine: Engine) -> None:
    """Parked for a person with no timer of its own, its row still names a wake-up: the
    deadline, at which a worker takes it and fails it."""
    doc = await engine.run(engine.load_text(_workflow("2s", _PERSON)))
    assert doc["runtimeStatus"] == "AwaitingUserInput", doc["error"]
    row = await engine.store.get_execution(doc["id"])
    assert row is not None
    assert row["wake_at"] is not None and row["wake_at"] < NEVER
    assert row["wake_at"] == row["started_at"] + timedelta(seconds=2)
    async with running_worker(engine):
        failed = await wait_for_status(engine, doc["id"], "Failed", seconds=60)
    _timed_out(failed, "2s")


async def test_a_worker_takes_the_deadline_up_after_a_restart(
    db_url: str, registry: StepRegistry
) -> None:
    """The process that ran it stops mid-wait (a delay of an hour); the next one's worker
    ends it at the deadline measured from the first start, not from its own."""
    async with Engine(db_url, registry=registry) as engine:
        execution_id = await engine.start(engine.load_text(_workflow("2s", _LONG_DELAY)))
        drive = asyncio.create_task(engine.drive(execution_id))
        await wait_for_status(engine, execution_id, "InProgress")
        while "step.started" not in await _events(engine, execution_id):
            await asyncio.sleep(0.01)
        drive.cancel()  # what a crash looks like to the database: no more writes
        with contextlib.suppress(asyncio.CancelledError):
            await drive
        started = (await engine.get_execution(execution_id))["startedAt"]
    async with Engine(db_url, registry=registry) as engine, running_worker(engine):
        failed = await wait_for_status(engine, execution_id, "Failed", seconds=60)
    _timed_out(failed, "2s")
    assert failed["startedAt"] == started
    assert started[:19] in failed["error"]["message"]


async def test_a_parked_delay_wakes_at_the_deadline_not_at_its_end(engine: Engine) -> None:
    execution_id = await engine.start(engine.load_text(_workflow("2s", _LONG_DELAY)))
    async with running_worker(engine):
        failed = await wait_for_status(engine, execution_id, "Failed", seconds=60)
    _timed_out(failed, "2s")


async def test_time_queued_before_the_start_does_not_count(engine: Engine) -> None:
    execution_id = await engine.start(
        engine.load_text(_workflow("1m", "{id: wait, type: sys.transform, input: {value: 1}}"))
    )
    # An hour passes while it waits in the queue (the engine's clock, as the database's).
    engine.clock.offset = timedelta(hours=1)
    doc = await engine.drive(execution_id)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == "done"


async def test_a_retry_after_the_deadline_is_refused(engine: Engine) -> None:
    text = _workflow("500ms", "{id: wait, type: test.slow, input: {name: gone, seconds: 60}}")
    doc = await engine.run(engine.load_text(text))
    assert doc["error"]["code"] == "timeout"
    with pytest.raises(ConflictError, match=r"its workflow.s timeout passed at .*rerun it"):
        await engine.retry(doc["id"])
    assert (await engine.get_execution(doc["id"]))["runtimeStatus"] == "Failed"


async def test_an_execution_that_ends_in_time_is_untouched(engine: Engine) -> None:
    text = _workflow("1h", "{id: wait, type: sys.transform, input: {value: 1}}")
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == "done"
