"""A workflow's ``on_failure`` (runtime.failure_handlers): the pushed workflow started in
the commit that records a failure, with ``{executionId, workflowName, workflowVersion,
error}``, linked by correlation id; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from flowledger import Engine
from flowledger.codec import loads
from flowledger.storage.base import ExecutionQuery
from tests.runtime.support import running_worker, wait_for_status, yaml

ALERT = yaml(
    """
    name: alert
    steps:
      - {id: note, type: sys.transform, input: {value: "{{ input }}"}}
    output: "{{ steps.note.output }}"
    """
)


def _orders(step: str, timeout: str | None = None) -> str:
    bound = f"timeout: {timeout}\n" if timeout else ""
    return f"name: orders\non_failure: {{workflow: alert}}\n{bound}steps:\n  - {step}\n"


async def _row(engine: Engine, execution_id: str) -> dict[str, Any]:
    row = await engine.store.get_execution(execution_id)
    assert row is not None
    return dict(row)


async def test_a_failure_starts_the_handler_in_the_same_commit(engine: Engine) -> None:
    await engine.push(engine.load_text(ALERT))
    failing = "{id: stop, type: sys.fail, input: {message: no stock, code: OutOfStock}}"
    doc = await engine.run(engine.load_text(_orders(failing)), correlation_id="order-7")
    assert doc["runtimeStatus"] == "Failed"
    link = doc["error"]["onFailure"]
    assert link["workflow"] == "alert"
    handler_id = link["executionId"]
    # No worker ran yet: the row came with the failure's commit, waiting for one.
    row = await _row(engine, handler_id)
    assert row["runtime_status"] == "NotStarted"
    assert row["parent_id"] is None  # linked by correlation id, not as a child
    assert row["correlation_id"] == "order-7"
    assert row["created_by"] == f"execution:{doc['id']}"
    trigger = loads(row["trigger"])
    assert trigger["type"] == "onFailure" and trigger["failedExecutionId"] == doc["id"]
    async with running_worker(engine):
        done = await wait_for_status(engine, handler_id, "Completed", seconds=60)
    assert done["output"] == {
        "executionId": doc["id"],
        "workflowName": "orders",
        "workflowVersion": doc["workflowVersion"],
        "error": {"message": "no stock", "stepId": "stop", "attempt": 1, "code": "OutOfStock"},
    }


async def test_the_workflow_timeout_starts_the_handler_too(engine: Engine) -> None:
    await engine.push(engine.load_text(ALERT))
    slow = "{id: stop, type: test.slow, input: {name: long, seconds: 60}}"
    doc = await engine.run(engine.load_text(_orders(slow, timeout="300ms")))
    assert doc["error"]["code"] == "timeout"
    handler_id = doc["error"]["onFailure"]["executionId"]
    trigger = loads((await _row(engine, handler_id))["trigger"])
    assert trigger["arguments"]["error"]["code"] == "timeout"


async def test_a_handler_that_fails_starts_no_handler_of_its_own(engine: Engine) -> None:
    await engine.push(engine.load_text(_orders("{id: stop, type: sys.fail}")))
    failing_alert = yaml(
        """
        name: alert
        on_failure: {workflow: orders}
        steps: [{id: stop, type: sys.fail, input: {message: the pager is down}}]
        """
    )
    await engine.push(engine.load_text(failing_alert))
    doc = await engine.run(engine.load_text(_orders("{id: stop, type: sys.fail}")))
    handler_id = doc["error"]["onFailure"]["executionId"]
    handler = await engine.drive(handler_id)
    assert handler["runtimeStatus"] == "Failed"
    assert handler["error"]["message"] == "the pager is down"
    assert "onFailure" not in handler["error"]


async def test_a_handler_not_pushed_is_said_in_the_error(engine: Engine) -> None:
    doc = await engine.run(engine.load_text(_orders("{id: stop, type: sys.fail}")))
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["onFailure"]["workflow"] == "alert"
    assert "no workflow named 'alert'" in doc["error"]["onFailure"]["error"]


async def test_an_execution_that_completes_starts_nothing(engine: Engine) -> None:
    await engine.push(engine.load_text(ALERT))
    fine = "{id: ok, type: sys.transform, input: {value: 1}}"
    doc = await engine.run(engine.load_text(_orders(fine)))
    assert doc["runtimeStatus"] == "Completed"
    assert [d["id"] for d in await engine.list_executions(ExecutionQuery())] == [doc["id"]]
