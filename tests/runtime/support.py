"""Helpers the runtime tests share: waiting for a state, running a worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from flowledger import Engine
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.worker.worker import Worker, WorkerOptions

FAST = WorkerOptions(concurrency=8, lease=timedelta(seconds=3), park_after=0.3, max_idle=0.05)


async def wait_until(
    engine: Engine,
    execution_id: str,
    check: Callable[[dict[str, Any]], bool],
    seconds: float = 20.0,
) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _ in range(int(seconds / 0.02)):
        doc = await engine.get_execution(execution_id)
        if check(doc):
            return doc
        await asyncio.sleep(0.02)
    raise AssertionError(f"execution {execution_id} never got there: {doc.get('runtimeStatus')}")


async def wait_for_status(
    engine: Engine, execution_id: str, status: str, seconds: float = 20.0
) -> dict[str, Any]:
    return await wait_until(engine, execution_id, lambda d: d["runtimeStatus"] == status, seconds)


@contextlib.asynccontextmanager
async def running_worker(engine: Engine, options: WorkerOptions = FAST) -> AsyncIterator[Worker]:
    worker = Worker(engine, options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task


async def start_and_park(engine: Engine, workflow: CompiledWorkflow) -> str:
    """Start ``workflow`` and run it as a worker would until it parks (waiting for its
    children, say), its lease released for whichever process takes it up next."""
    execution_id = await engine.start(workflow)
    epoch = await engine.store.acquire_lease(execution_id, engine.owner, engine.lease)
    assert epoch is not None
    status, parked_until = await engine.run_owned(execution_id, park_after=0.1)
    await engine.store.release_lease(execution_id, epoch, parked_until)
    assert str(status) == "InProgress" and parked_until is not None
    return execution_id


def yaml(text: str) -> str:
    return textwrap.dedent(text)


def latest(doc: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The newest attempt of a top-level step."""
    runs = [s for s in doc["steps"].values() if s["stepId"] == step_id and not s["loop"]]
    return max(runs, key=lambda s: s["attempt"])


def step_status(doc: dict[str, Any], step_id: str) -> str | None:
    """The status of a top-level step's newest attempt; None before it has one."""
    runs = [s for s in doc["steps"].values() if s["stepId"] == step_id and not s["loop"]]
    return max(runs, key=lambda s: s["attempt"])["status"] if runs else None
