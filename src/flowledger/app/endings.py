"""How an execution ended, as its page says it: the children a failure came from, the
attempt whose step logs hold the traceback, and who cancelled it, when and why."""

from __future__ import annotations

import re
from typing import Any, cast

from typing_extensions import TypedDict

from flowledger.app.cancels import cancel_reason
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.runtime.status import ExecutionStatus
from flowledger.steps.base import StepKind
from flowledger.types import EventDocument, ExecutionDocument, StepDocument

#: What an execution id looks like: an error's details are data a handler may have made.
_ID = re.compile(r"[0-9A-Za-z-]{8,64}\Z")
#: Levels of children followed down an error (sub-workflows nest at most this deep).
_MOST_NESTED = 32


class Cancellation(TypedDict):
    by: str | None
    at: str | None
    reason: str | None


def error_children(error: Any) -> list[str]:
    """The child executions a sub-workflow step's error came from, outermost first: its
    ``details.childWorkflowExecutionId``, then that child's error's own, and so on."""
    found: list[str] = []
    while isinstance(error, dict) and len(found) < _MOST_NESTED:
        details = error.get("details")
        child = details.get("childWorkflowExecutionId") if isinstance(details, dict) else None
        if not isinstance(child, str) or not _ID.match(child):
            break
        found.append(child)
        error = cast(dict[str, Any], details).get("childError")
    return found


def failed_children(doc: ExecutionDocument, runs: list[StepDocument]) -> list[str]:
    """The children a failed execution's error came from: named by its error, else (a
    loop's error names its iteration, not the child) by the latest failed attempt's."""
    if doc["runtimeStatus"] != "Failed":
        return []
    named = error_children(doc["error"])
    for run in reversed(runs):
        if named:
            break
        if run["status"] == "Failed":
            named = error_children(run["error"])
    return named


def failed_attempt(
    workflow: CompiledWorkflow, doc: ExecutionDocument, runs: list[StepDocument]
) -> str | None:
    """The task attempt whose failure failed the execution: the one its error names, or
    for a loop's error (which names the iteration's step, not its attempt) the latest that
    failed inside the loop, one with ``continue_on_error`` only if no other did."""
    error = doc["error"]
    ended_failed = ExecutionStatus(doc["runtimeStatus"]) == ExecutionStatus.FAILED
    if not ended_failed or not isinstance(error, dict):
        return None

    def task(run: StepDocument) -> CompiledStep | None:
        step = workflow.steps.get(run["stepId"])
        return step if step is not None and step.step_type.kind is StepKind.TASK else None

    failed = [run for run in runs if run["status"] == "Failed" and task(run) is not None]
    for run in reversed(failed):
        if run["stepId"] == error.get("stepId") and run["attempt"] == error.get("attempt"):
            return str(run["id"])
    inside = [run for run in failed if error.get("stepId") in (run.get("loop") or {})]
    stopped = [run for run in inside if not cast(CompiledStep, task(run)).spec.continue_on_error]
    chosen = stopped or inside
    return chosen[-1]["id"] if chosen else None


def cancellation(doc: ExecutionDocument, events: list[EventDocument]) -> Cancellation | None:
    """Who cancelled the execution, when and why: its ``execution.cancelled`` event, else
    what its error says (``cancelled: REASON``, ``cancelledBy``)."""
    if ExecutionStatus(doc["runtimeStatus"]) != ExecutionStatus.CANCELLED:
        return None
    for event in reversed(events):
        if event["kind"] == "execution.cancelled":
            detail = event.get("detail") or {}
            return {"by": detail.get("by"), "at": event["at"], "reason": detail.get("reason")}
    recorded = cancel_reason(doc["error"] if isinstance(doc["error"], dict) else None)
    return {
        "by": recorded.by if recorded else None,
        "at": doc["completedAt"],
        "reason": recorded.reason if recorded else None,
    }
