"""sys.sub_workflow fan-outs that fail: no child starts once the step has failed, how
many children may fail (``tolerated_failures``), and which items failed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, step_type
from flowledger.errors import DefinitionError
from flowledger.storage import Batch, ExecutionQuery
from tests.runtime.support import latest, running_worker, start_and_park, wait_for_status, yaml

KID = yaml(
    """
    name: kid
    input_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
    steps:
      - {id: work, type: test.held, input: {n: "{{ input.n }}"}}
    output: "{{ input.n }}"
    """
)

#: Children of items below 0 fail; item 0's waits for the test's gate, then fails.
FAN = yaml(
    """
    name: fan_out
    steps:
      - id: fan
        type: sys.sub_workflow
        input:
          workflow: kid
          items: "{{ input.items }}"
          concurrency: "{{ input.concurrency }}"
          tolerated_failures: "{{ input.tolerated }}"
          input: {n: "{{ loop.fan.item }}"}
      - id: after
        type: sys.transform
        input:
          value:
            failed: "{{ steps.fan.output.failedCount }}"
            items: "{{ steps.fan.output.executions | selectattr('error') | map(attribute='error.message') | list }}"
    output: "{{ steps.after.output }}"
    """
)

#: The fan-out as it was before ``tolerated_failures``: the first failure fails it.
FAIL_FAST = yaml(
    """
    name: fail_fast
    steps:
      - id: fan
        type: sys.sub_workflow
        input: {workflow: kid, items: [0, 1, 2], concurrency: 2, input: {n: "{{ loop.fan.item }}"}}
    """
)


class Held(BaseModel):
    n: int


class Gate:
    def __init__(self) -> None:
        self.open = asyncio.Event()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def registry(gate: Gate) -> StepRegistry:
    @step_type("test.held")
    async def held(data: Held, ctx: StepContext) -> dict[str, Any]:
        if data.n == 0:
            await gate.open.wait()
        if data.n <= 0:
            raise StepError(f"item {data.n} is bad", code="bad.item", retryable=False)
        return {}

    registry = StepRegistry.with_builtins()
    registry.register(held)
    return registry


async def _children(engine: Engine, parent_id: str) -> list[dict[str, Any]]:
    return await engine.list_executions(ExecutionQuery(parent_id=parent_id, limit=100))


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def _run(engine: Engine, items: list[int], *, tolerated: Any = None) -> dict[str, Any]:
    await engine.push(engine.load_text(KID))
    data = {"items": items, "concurrency": 2, "tolerated": tolerated}
    return await engine.run(engine.load_text(FAN), data)


def _fail_item_0_before_refill(
    engine: Engine, gate: Gate, monkeypatch: pytest.MonkeyPatch, refill: int
) -> list[Batch]:
    """Hold the ``refill``-th commit of ``engine`` that creates children until item 0's
    child has failed (its gate opened then): the failure lands between the parent's
    decision to refill its window and the commit of that decision. Returns the batches
    that created children."""
    store = engine.store
    commit = store.commit
    creations: list[Batch] = []

    async def ordered(batch: Batch, *, group: bool = False) -> None:
        if batch.create_executions:
            creations.append(batch)
            if len(creations) == refill:
                gate.open.set()

                async def failed() -> bool:
                    children = await _children(engine, batch.execution_id)
                    return any(
                        c["trigger"]["index"] == 0 and c["runtimeStatus"] == "Failed"
                        for c in children
                    )

                await _until(failed)
        await commit(batch, group=group)

    monkeypatch.setattr(store, "commit", ordered)
    return creations


async def _check_only_items_0_and_1_started(engine: Engine, parent_id: str) -> None:
    doc = await engine.get_execution(parent_id)
    assert doc["runtimeStatus"] == "Failed"
    children = await _children(engine, parent_id)
    assert sorted(c["trigger"]["index"] for c in children) == [0, 1]
    fan = latest(doc, "fan")
    assert fan["error"]["code"] == "child.failed"
    assert "(item 0)" in fan["error"]["message"], fan["error"]
    assert "item 0 is bad" in fan["error"]["message"]
    assert sorted(c["id"] for c in fan["childWorkflowExecutions"]) == sorted(
        c["id"] for c in children
    )


async def test_no_child_starts_once_a_sibling_failed_before_the_refill_committed(
    engine: Engine, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1's child ends first: the parent reads item 0's child still running and
    starts item 2's. Item 0's child fails before that start is committed: item 2's
    child must not be created (it was, and was cancelled later)."""
    creations = _fail_item_0_before_refill(engine, gate, monkeypatch, refill=2)
    await engine.push(engine.load_text(KID))
    doc = await engine.run(engine.load_text(FAIL_FAST))
    assert len(creations) == 2, "the parent never tried to refill its window"
    await _check_only_items_0_and_1_started(engine, doc["id"])


async def test_after_a_restart_no_child_starts_once_a_sibling_failed(
    db_url: str, registry: StepRegistry, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race when a worker takes the parent up after a restart."""
    async with Engine(db_url, registry=registry) as first:
        await first.push(first.load_text(KID))
        parent_id = await start_and_park(first, first.load_text(FAIL_FAST))  # 2 children
    async with Engine(db_url, registry=registry) as second:
        creations = _fail_item_0_before_refill(second, gate, monkeypatch, refill=1)
        async with running_worker(second):
            await wait_for_status(second, parent_id, "Failed")
        assert len(creations) == 1, "the parent never tried to refill its window"
        await _check_only_items_0_and_1_started(second, parent_id)


async def test_failures_within_the_tolerated_count_complete_the_step(
    engine: Engine, gate: Gate
) -> None:
    gate.open.set()
    doc = await _run(engine, [1, -1, 2, -2, 3], tolerated=2)
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["output"] == {"failed": 2, "items": ["item -1 is bad", "item -2 is bad"]}
    output = latest(doc, "fan")["outputData"]
    assert output["failedCount"] == 2
    executions = output["executions"]
    assert [e["runtimeStatus"] for e in executions] == [
        "Completed", "Failed", "Completed", "Failed", "Completed"
    ]  # fmt: skip
    assert [e["output"] for e in executions] == [1, None, 2, None, 3]
    assert executions[0]["error"] is None
    assert executions[1]["error"]["code"] == "bad.item"
    assert executions[3]["error"]["message"] == "item -2 is bad"


async def test_one_failure_past_the_tolerated_percentage_fails_the_step(
    engine: Engine, gate: Gate
) -> None:
    """20% of 5 items tolerates one failure: the second fails the step, says how many
    failed and which item, and lists the failed children in its details."""
    gate.open.set()
    doc = await _run(engine, [-1, 1, -2, 2, 3], tolerated="20%")
    assert doc["runtimeStatus"] == "Failed"
    error = latest(doc, "fan")["error"]
    assert error["code"] == "child.failed"
    assert "2 of 5 child executions failed, more than the 1 tolerated" in error["message"]
    assert "(item 2)" in error["message"] and "item -2 is bad" in error["message"]
    details = error["details"]
    assert details["itemIndex"] == 2 and details["failedCount"] == 2
    assert [(f["index"], f["code"]) for f in details["failedChildren"]] == [
        (0, "bad.item"), (2, "bad.item")
    ]  # fmt: skip
    assert details["failedChildrenNotListed"] == 0
    children = {c["trigger"]["index"]: c for c in await _children(engine, doc["id"])}
    assert {f["id"] for f in details["failedChildren"]} == {children[0]["id"], children[2]["id"]}
    assert 4 not in children  # the step failed before the last item's turn


async def test_a_failed_fan_out_lists_at_most_twenty_failed_children(
    engine: Engine, gate: Gate
) -> None:
    gate.open.set()
    items = [-(n + 1) for n in range(25)]
    doc = await _run(engine, items, tolerated=24)
    error = latest(doc, "fan")["error"]
    assert "25 of 25 child executions failed, more than the 24 tolerated" in error["message"]
    assert [f["index"] for f in error["details"]["failedChildren"]] == list(range(20))
    assert error["details"]["failedChildrenNotListed"] == 5


async def test_without_tolerance_the_first_failure_names_its_item(engine: Engine) -> None:
    await engine.push(engine.load_text(KID))
    doc = await engine.run(engine.load_text(FAIL_FAST.replace("[0, 1, 2]", "[1, -5, 2]")))
    error = latest(doc, "fan")["error"]
    assert error["message"].endswith("(item 1) ended Failed: item -5 is bad")
    assert error["details"]["itemIndex"] == 1
    assert error["details"]["failedChildren"][0]["code"] == "bad.item"


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (-1, "tolerated_failures must be at least 0, not -1"),
        ('"150%"', "tolerated_failures is a percentage of at most 100%, not '150%'"),
        ("lots", "tolerated_failures is a count of children (3) or a percentage of them"),
        ("true", "must be a number, not true"),
    ],
)
async def test_a_literal_tolerance_is_checked_with_the_definition(
    engine: Engine, given: object, said: str
) -> None:
    text = FAN.replace('"{{ input.tolerated }}"', str(given))
    with pytest.raises(DefinitionError) as caught:
        engine.load_text(text)
    message = str(caught.value)
    assert "step 'fan'" in message and "input.tolerated_failures" in message, message
    assert said in message, message


async def test_a_templated_tolerance_that_is_not_one_fails_the_step_on_its_input(
    engine: Engine, gate: Gate
) -> None:
    gate.open.set()
    doc = await _run(engine, [1, 2], tolerated="150%")
    assert doc["runtimeStatus"] == "Failed"
    error = latest(doc, "fan")["error"]
    assert error["code"] == "input" and "at most 100%" in error["message"]


def test_output_reads_of_the_new_fields_validate(engine: Engine) -> None:
    text = FAN.replace(
        "steps.fan.output.failedCount",
        "steps.fan.output.failedCount + (steps.fan.output.executions[0].error.code | length)",
    )
    engine.load_text(text)
    with pytest.raises(DefinitionError, match="failedCounts"):
        engine.load_text(FAN.replace("output.failedCount", "output.failedCounts"))
