"""An execution's data store as plain JSON (SPEC §3): what its templates read, as its
page and its console (app.console) show it for the loop iterations chosen."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from flowledger.app.step_runs import run_duration, run_order
from flowledger.definition.compiled import CompiledGraph, CompiledWorkflow
from flowledger.types import ExecutionDocument


def data_store(
    doc: ExecutionDocument, workflow: CompiledWorkflow, iterations: Mapping[str, int]
) -> dict[str, Any]:
    """The execution's data store as plain JSON (SPEC §3): what templates read, with each
    step's latest output (for a loop body step: of the chosen iteration, else the last)
    and the loop contexts of the chosen iterations (their ``previous`` as a run sets it).
    Secrets are never part of it."""
    trigger = doc["trigger"] or {}
    arguments = trigger.get("arguments", trigger.get("body"))
    steps: dict[str, Any] = {}
    for run in sorted(doc["steps"].values(), key=run_order):
        loop = run.get("loop") or {}
        if any(iterations.get(k, i) != i for k, i in loop.items()):
            continue
        steps[run["stepId"]] = {
            "nodeId": run["stepId"],
            "status": run["status"],
            "output": run["outputData"],
            "outputData": run["outputData"],
            "executedAt": run["startedAt"],
            "durationMs": run_duration(run),
            "error": run["error"],
            "attempt": run["attempt"],
        }
    loop_contexts: dict[str, Any] = {}
    for loop_id, index in iterations.items():
        given = _loop_input(doc, loop_id)
        items = given.get("items")
        if isinstance(items, list) and not 0 <= index < len(items):
            continue
        if not isinstance(items, list) and given.get("until") is None:
            continue
        # As runtime.loops sets it: none where iterations run side by side.
        sequential = given.get("until") is not None or given.get("concurrency", 1) == 1
        previous = None
        if index > 0 and sequential:
            body = workflow.steps[loop_id].body if loop_id in workflow.steps else None
            previous = _outputs_of(doc, body, loop_id, index - 1, iterations)
        loop_contexts[loop_id] = {
            "loopName": loop_id,
            "items": items if isinstance(items, list) else None,
            "index": index,
            "item": items[index] if isinstance(items, list) else None,
            "previous": previous,
        }
    return {
        "trigger": trigger,
        "input": arguments if arguments is not None else {},
        "steps": steps,
        "variables": doc["variables"] or {},
        "loop": loop_contexts,
        "context": doc["context"] or {},
        "execution": {
            "id": doc["id"],
            "correlationId": doc["correlationId"],
            "workflowName": doc["workflowName"],
            "workflowVersion": doc["workflowVersion"],
            "startedAt": doc["startedAt"],
        },
    }


def _loop_input(doc: ExecutionDocument, loop_id: str) -> dict[str, Any]:
    """The input of a loop step's latest attempt (its items, or its until)."""
    found: dict[str, Any] = {}
    for run in sorted(doc["steps"].values(), key=run_order):
        if run["stepId"] == loop_id and isinstance(run.get("inputData"), dict):
            found = cast(dict[str, Any], run["inputData"])
    return found


def _outputs_of(
    doc: ExecutionDocument,
    body: CompiledGraph | None,
    loop_id: str,
    index: int,
    iterations: Mapping[str, int],
) -> dict[str, Any] | None:
    """``loop.<id>.previous`` as the runtime sets it: body step id → its output in
    iteration ``index`` of the loop (in the chosen iterations of the loops around it)."""
    if body is None:
        return None
    outputs: dict[str, Any] = {}
    for run in sorted(doc["steps"].values(), key=run_order):
        loop = run.get("loop") or {}
        if run["stepId"] not in body.steps or loop.get(loop_id) != index:
            continue
        if any(iterations.get(k, i) != i for k, i in loop.items() if k != loop_id):
            continue
        done = run["status"] == "Completed"
        outputs[run["stepId"]] = run["outputData"] if done else None
    return outputs
