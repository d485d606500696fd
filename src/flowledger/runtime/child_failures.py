"""What a ``sys.sub_workflow`` step says of its failed children: how many failed, which
items, and the error of a step that failed past its ``tolerated_failures``.

``children`` are the step's child ids in item order (an index is a position);
``results`` what the step kept of each ended child (runtime.children._result).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowledger.runtime.status import ExecutionStatus

#: A child that ended so counts against ``tolerated_failures``.
FAILED = (ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
#: The failed children a failed step's error lists (``details.failedChildren``): the
#: error is stored with the step and shown with every read of it.
LISTED_FAILURES = 20

Results = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class StepFailure:
    message: str
    details: dict[str, Any]


def failed_count(results: Results) -> int:
    return sum(1 for r in results.values() if ExecutionStatus(r["runtimeStatus"]) in FAILED)


def failed_children(children: Sequence[str], results: Results) -> list[dict[str, Any]]:
    """The failed children so far, in item order: ``{id, index, runtimeStatus, code}``
    (a cancelled child's error has no code: ``cancelled``)."""
    failed = []
    for index, child_id in enumerate(children):
        result = results.get(child_id)
        if result is None or ExecutionStatus(result["runtimeStatus"]) not in FAILED:
            continue
        error = result.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if code is None and result["runtimeStatus"] == str(ExecutionStatus.CANCELLED):
            code = "cancelled"
        status = result["runtimeStatus"]
        failed.append({"id": child_id, "index": index, "runtimeStatus": status, "code": code})
    return failed


def past_tolerance(
    child_id: str, children: Sequence[str], results: Results, tolerated: int, items: int
) -> StepFailure:
    """The step's error when ``child_id``'s failure is one more than the step of
    ``items`` children (started or not) tolerates."""
    result = results[child_id]
    index = children.index(child_id)
    error = result.get("error") or {}
    said = error.get("message") if isinstance(error, dict) else None
    message = f"child execution {child_id} (item {index}) ended {result['runtimeStatus']}"
    if said:
        message += f": {said}"
    failed = failed_children(children, results)
    if tolerated:
        message = (
            f"{len(failed)} of {items} child executions failed, more than the "
            f"{tolerated} tolerated (tolerated_failures); the first past the limit: {message}"
        )
    details = {
        "childWorkflowExecutionId": child_id,
        "childError": error,
        "itemIndex": index,
        "failedCount": len(failed),
        "tolerated": tolerated,
        "failedChildren": failed[:LISTED_FAILURES],
        "failedChildrenNotListed": max(0, len(failed) - LISTED_FAILURES),
    }
    return StepFailure(message, details)


def entry(result: Mapping[str, Any]) -> dict[str, Any]:
    """A child's entry in the step's output (``error`` is null unless it failed)."""
    return {k: result.get(k) for k in ("id", "runtimeStatus", "output", "error")}
