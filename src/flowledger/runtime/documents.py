"""Execution and event documents exactly as SPEC §4 shapes them (API, CLI --json, Python).

Every field of SPEC §4 is always present (``null`` when it has no value, never
missing); timestamps are ISO-8601 UTC with milliseconds and ``Z``. Besides the
SPEC's fields the documents carry a few documented extensions, pinned by
``tests/runtime/test_documents.py``: an execution's ``input`` (what templates read as
``input``: the function trigger's arguments or the webhook body; null otherwise), a
step's ``inputData`` (the rendered input),
an execution's ``createdAt`` (when it was created: queued, before it started; the
seed's runs show it), ``rerunOf``, ``jobRunId`` and, with its steps, ``pendingInputs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowledger.codec import loads
from flowledger.runtime.datastore import trigger_input
from flowledger.runtime.reserved import engine_part
from flowledger.steps.human import INPUT_WAIT
from flowledger.storage.base import Row
from flowledger.timeutil import iso


def loop_indexes(loop_key: str) -> dict[str, int]:
    """``"process_items:3/inner:0"`` → ``{"process_items": 3, "inner": 0}``."""
    if not loop_key:
        return {}
    out = {}
    for part in loop_key.split("/"):
        name, _, index = part.rpartition(":")
        out[name] = int(index)
    return out


def step_document(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "stepId": row["step_id"],
        "status": row["status"],
        "attempt": row["attempt"],
        "startedAt": iso(row["started_at"]) if row["started_at"] else None,
        "completedAt": iso(row["completed_at"]) if row["completed_at"] else None,
        "failedAt": iso(row["failed_at"]) if row["failed_at"] else None,
        "dueAt": iso(row["due_at"]) if row["due_at"] else None,
        "inputData": loads(row["input"]),
        "outputData": loads(row["output"]),
        "error": loads(row["error"]),
        "loop": loop_indexes(row["loop_key"]),
        # Stored as bare ids; the seed types (and SPEC §4) show objects: [{"id": ...}].
        "childWorkflowExecutions": [{"id": child} for child in loads(row["children"]) or []],
    }


def execution_document(row: Mapping[str, Any], steps: list[Row] | None = None) -> dict[str, Any]:
    trigger = loads(row["trigger"])
    doc: dict[str, Any] = {
        "id": row["id"],
        "correlationId": row["correlation_id"],
        "parentWorkflowExecutionId": row["parent_id"],
        "rootWorkflowExecutionId": row["root_id"],
        "workflowTemplateVersionId": row["workflow_version_id"],
        "workflowName": row["workflow_name"],
        "workflowVersion": row["workflow_version"],
        "runtimeStatus": row["runtime_status"],
        "currentStateName": row["current_state_name"],
        "startedAt": iso(row["started_at"]) if row["started_at"] else None,
        "completedAt": iso(row["completed_at"]) if row["completed_at"] else None,
        "failedAt": iso(row["failed_at"]) if row["failed_at"] else None,
        "lastActivityAt": iso(row["last_activity_at"]),
        "createdAt": iso(row["created_at"]),
        "createdBy": row["created_by"],
        "context": loads(row["context"]),
        "trigger": trigger,
        "input": trigger_input(trigger),
        "variables": loads(row["variables"]),
        "output": loads(row["output"]),
        "error": loads(row["error"]),
        "rerunOf": row.get("rerun_of"),
        "jobRunId": row.get("job_run_id"),
    }
    if steps is not None:
        doc["steps"] = {s["id"]: step_document(s) for s in steps}
        doc["pendingInputs"] = pending_inputs(steps, row["id"])
    return doc


def waits_on_children(row: Mapping[str, Any], steps: list[Row]) -> bool:
    """An execution awaiting input with a step still running children: the people it
    waits for may be its descendants' (their waits are read to list them)."""
    if row["runtime_status"] != "AwaitingUserInput":
        return False
    return any(s["status"] == "InProgress" and loads(s["children"]) for s in steps)


def waits_for_input(row: Mapping[str, Any]) -> bool:
    """A step execution parked until a person answers (sys.wait_for_input)."""
    if row["status"] != "InProgress" or not row["suspended"]:
        return False
    state = loads(row["state"])
    return engine_part(state).get("wait") == INPUT_WAIT  # a custom step's "wait" is its own


def pending_inputs(steps: list[Row], execution_id: str) -> list[dict[str, Any]]:
    """The steps of ``execution_id`` waiting for a person: what to ask, of whom, by when
    (SPEC §4 extension)."""
    waiting = []
    for row in steps:
        if not waits_for_input(row):
            continue
        data = loads(row["input"]) or {}
        waiting.append(
            {
                "executionId": execution_id,
                "stepExecutionId": row["id"],
                "stepId": row["step_id"],
                "prompt": data.get("prompt"),
                "schema": data.get("schema"),
                "assignee": data.get("assignee"),
                "dueAt": iso(row["due_at"]) if row["due_at"] else None,
            }
        )
    return waiting


#: The execution status an execution-level event moves to (SPEC §4: every transition is an
#: event carrying its status). Rows written without one get it here, old rows included.
EXECUTION_EVENT_STATUS = {
    "execution.created": "NotStarted",
    "execution.started": "InProgress",
    "execution.resumed": "InProgress",
    "execution.retried": "InProgress",
    "execution.awaiting_input": "AwaitingUserInput",
    "execution.completed": "Completed",
    "execution.failed": "Failed",
    "execution.cancelled": "Cancelled",
}


def event_document(row: Mapping[str, Any]) -> dict[str, Any]:
    detail = loads(row["detail"])
    loop_key = row.get("loop_key")
    if loop_key and (detail is None or isinstance(detail, dict)):
        # Which iteration a loop body's step event is of (the same step id repeats), in
        # ``detail``: SPEC §4 fixes the event's own fields.
        detail = {**(detail or {}), "loop": loop_indexes(loop_key)}
    status = row["status"]
    if status is None and row["step_execution_id"] is None:
        status = EXECUTION_EVENT_STATUS.get(row["kind"])
        if row["kind"] == "execution.completed" and isinstance(detail, dict):
            status = detail.get("status") or status  # CompletedWithNoActionTaken
    return {
        "seq": row["seq"],
        "at": iso(row["at"]),
        "kind": row["kind"],
        "stepExecutionId": row["step_execution_id"],
        "stepId": row["step_id"],
        "attempt": row["attempt"],
        "status": status,
        "detail": detail,
    }
