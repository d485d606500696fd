"""Fan-outs under failure: a retry (and a resume in another process) keeps ``concurrency``,
and a failed item cancels its running siblings at once.

In flight is counted from stored rows, never from clocks: every item that has not ended
waits for a person, so whatever a parked execution shows unfinished is in flight.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowledger import Engine, StepRegistry
from flowledger.runtime import inbox
from flowledger.storage import ExecutionQuery
from tests.runtime.support import latest, yaml

#: Items 1 and 3 complete at once, 2 fails a moment later, the others wait for a person.
#: ``FAILS`` is the item that fails: a second version with none fixes it.
ITEM = """
name: item
input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
steps:
  - id: route
    type: sys.condition
    input: {expression: "{{ input.n in [1, 3] }}"}
    then: [done]
    else: [nap]
  - {id: done, type: sys.transform, input: {value: "{{ input.n }}"}}
  - id: nap
    type: sys.delay
    after: [route]
    input: {duration: "{{ '200ms' if input.n == FAILS else '1ms' }}"}
  - {id: boom, type: sys.fail, when: "{{ input.n == FAILS }}", input: {message: "item {{ input.n }} failed"}}
  - {id: ask, type: sys.wait_for_input, after: [nap], when: "{{ input.n != FAILS }}", input: {prompt: "ok?"}}
output: "{{ input.n }}"
"""
FAN_OUT = """
name: fan-out
steps:
  - id: kids
    type: sys.sub_workflow
    input:
      workflow: item
      items: [1, 2, 3, 4, 5, 6, 7, 8, 9]
      concurrency: 3
      input: {n: "{{ loop.kids.item }}"}
output: "{{ steps.kids.output.executions | map(attribute='output') | list }}"
"""
DONE = ("Completed", "CompletedWithNoActionTaken", "Failed", "Cancelled")


async def _children(engine: Engine, parent_id: str) -> list[dict[str, Any]]:
    return await engine.list_executions(ExecutionQuery(parent_id=parent_id, limit=100))


async def _failed_fan_out(engine: Engine) -> str:
    """A fan-out whose item 2 failed after items 1 and 3 completed, its item fixed since."""
    await engine.push(engine.load_text(yaml(ITEM).replace("FAILS", "2")))
    doc = await engine.run(engine.load_text(yaml(FAN_OUT)))
    assert doc["runtimeStatus"] == "Failed", doc["runtimeStatus"]
    first = latest(doc, "kids")["childWorkflowExecutions"]
    assert len(first) >= 3
    await engine.push(engine.load_text(yaml(ITEM).replace("FAILS", "0")))
    return str(doc["id"])


async def _in_flight(engine: Engine, parent_id: str, attempt: int) -> list[dict[str, Any]]:
    """The children the step's ``attempt`` started that have not ended."""
    doc = await engine.get_execution(parent_id)
    [run] = [s for s in doc["steps"].values() if s["stepId"] == "kids" and s["attempt"] == attempt]
    ids = {c["id"] for c in run["childWorkflowExecutions"] or []}
    return [
        c
        for c in await _children(engine, parent_id)
        if c["id"] in ids and c["runtimeStatus"] not in DONE
    ]


async def _answer_all(engine: Engine, parent_id: str) -> dict[str, Any]:
    """Answer the waiting children one at a time; at every stop at most 3 are in flight."""
    for _ in range(20):
        doc = await engine.settle(parent_id)
        if doc["runtimeStatus"] == "Completed":
            return dict(doc)
        waiting = await _in_flight(engine, parent_id, 2)
        assert 0 < len(waiting) <= 3, [c["trigger"]["arguments"] for c in waiting]
        child = min(waiting, key=lambda c: c["trigger"]["index"])
        await engine.submit_input(child["id"], "ask", {"ok": True})
        await engine.settle(child["id"])
    raise AssertionError("the fan-out never completed")


async def test_a_retried_fan_out_starts_at_most_concurrency_children(engine: Engine) -> None:
    """A retry reusing the completed items 1 and 3 started five children at once under
    ``concurrency: 3``: the reused results counted as children that had ended before the
    list of children had reached them."""
    parent_id = await _failed_fan_out(engine)
    await engine.retry(parent_id)
    doc = await engine.settle(parent_id)
    assert doc["runtimeStatus"] == "AwaitingUserInput"
    waiting = await _in_flight(engine, parent_id, 2)
    assert sorted(c["trigger"]["index"] for c in waiting) == [1, 3, 4]
    done = await _answer_all(engine, parent_id)
    assert done["output"] == [1, 2, 3, 4, 5, 6, 7, 8, 9]


async def test_a_retry_resumed_by_another_process_keeps_the_limit(
    db_url: str, registry: StepRegistry
) -> None:
    async with Engine(db_url, registry=registry) as first:
        parent_id = await _failed_fan_out(first)
        await first.retry(parent_id)
        epoch = await first.store.acquire_lease(parent_id, first.owner, first.lease)
        assert epoch is not None
        # A worker's run: it starts the retry's children and parks, none of them run.
        _, parked_until = await first.run_owned(parent_id, park_after=0.1)
        await first.store.release_lease(parent_id, epoch, parked_until)
        assert len(await _in_flight(first, parent_id, 2)) == 3
    async with Engine(db_url, registry=registry) as second:  # the process was restarted
        done = await _answer_all(second, parent_id)
    assert done["output"] == [1, 2, 3, 4, 5, 6, 7, 8, 9]


#: Item 2 fails while the others wait: one for a person, one in a long delay.
SIBLINGS = """
name: sibling
input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
steps:
  - id: route
    type: sys.condition
    input: {expression: "{{ input.n == 1 }}"}
    then: [ask]
    else: [nap]
  - {id: ask, type: sys.wait_for_input, input: {prompt: "ok?"}}
  - id: nap
    type: sys.delay
    after: [route]
    input: {duration: "{{ '200ms' if input.n == 2 else '60s' }}"}
  - {id: boom, type: sys.fail, when: "{{ input.n == 2 }}", input: {message: "item 2 failed"}}
"""
SIBLINGS_PARENT = """
name: siblings
steps:
  - id: kids
    type: sys.sub_workflow
    input: {workflow: sibling, items: [1, 2, 3], concurrency: 3, input: {n: "{{ loop.kids.item }}"}}
"""


async def test_a_failed_child_cancels_its_waiting_siblings_at_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel reached a sibling at its next look for signals (a second later), and a
    sibling waiting for a person only once a worker came: `run` returned with it still
    AwaitingUserInput. Its polls made rare, the sibling in its delay would see the cancel
    only after ``run`` gave up waiting for it."""
    monkeypatch.setattr(inbox, "POLL_INTERVAL", 120.0)
    await engine.push(engine.load_text(yaml(SIBLINGS)))
    doc = await asyncio.wait_for(engine.run(engine.load_text(yaml(SIBLINGS_PARENT))), 30)
    assert doc["runtimeStatus"] == "Failed"
    assert "item 2 failed" in latest(doc, "kids")["error"]["message"]
    children = {c["trigger"]["arguments"]["n"]: c for c in await _children(engine, doc["id"])}
    assert {n: c["runtimeStatus"] for n, c in children.items()} == {
        1: "Cancelled",
        2: "Failed",
        3: "Cancelled",
    }
    reason = f"sibling child execution {children[2]['id']} failed"
    assert (
        children[1]["error"]["message"] == children[3]["error"]["message"] == f"cancelled: {reason}"
    )
