"""An ended execution's objects are freed by reference counting, not left to the cyclic
collector (whose full passes walk the whole heap with the loop stopped): the runner's
parts hold it weakly (runtime.runner), and the engine drops what it hung on it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from flowledger import Engine, Worker
from flowledger.runtime.inbox import Inbox
from flowledger.runtime.journal import Journal
from flowledger.runtime.runner import ExecutionRunner
from flowledger.runtime.tasks import TaskDriver
from flowledger.worker.worker import WorkerOptions

CHAIN = """
name: chain
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
  - {id: b, type: sys.transform, input: {value: "{{ steps.a.output + 1 }}"}}
  - {id: c, type: test.echo, input: {value: "{{ steps.b.output }}"}}
"""
CHILD = """
name: child
steps:
  - {id: double, type: sys.transform, input: {value: "{{ input.n * 2 }}"}}
output: "{{ steps.double.output }}"
"""
PARENT = """
name: parent
steps:
  - id: each
    type: sys.loop
    input: {items: [1, 2, 3], concurrency: 2}
    steps:
      - {id: twice, type: sys.transform, input: {value: "{{ loop.each.item * 2 }}"}}
  - id: fan
    type: sys.sub_workflow
    input: {workflow: child, items: [1, 2], input: {n: "{{ loop.fan.item }}"}}
"""
#: What an execution's run is made of: none may outlive it.
PARTS = (ExecutionRunner, TaskDriver, Inbox, Journal)


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive() -> dict[str, int]:
    found: dict[str, int] = {}
    for thing in gc.get_objects():
        if isinstance(thing, PARTS):
            found[type(thing).__name__] = found.get(type(thing).__name__, 0) + 1
    return found


async def test_runs_leave_nothing_for_the_collector(engine: Engine, collector_off: None) -> None:
    await engine.push(engine.load_text(CHILD))
    chain, parent = engine.load_text(CHAIN), engine.load_text(PARENT)
    docs: list[dict[str, Any]] = []
    for _ in range(3):
        docs.append(await engine.run(chain))
        docs.append(await engine.run(parent))
        docs.append(await engine.drive(await engine.start(chain)))
    assert {d["runtimeStatus"] for d in docs} == {"Completed"}
    assert alive() == {}


async def test_a_worker_leaves_nothing_for_the_collector(
    engine: Engine, collector_off: None
) -> None:
    chain = engine.load_text(CHAIN)
    ids = [await engine.start(chain) for _ in range(20)]
    worker = Worker(engine, WorkerOptions(concurrency=4, max_idle=0.01))
    running = asyncio.create_task(worker.run())
    while worker.completed < len(ids):
        await asyncio.sleep(0.01)
    worker.stop()
    await running
    assert {(await engine.get_execution(i))["runtimeStatus"] for i in ids} == {"Completed"}
    assert alive() == {}
