"""Where a job run stands, derived from its executions alone, and its JSON document.

The status of a job run reuses the execution statuses:

- ``NotStarted``: no workflow started yet.
- ``InProgress``: a workflow runs, or the next one is about to start.
- ``AwaitingUserInput``: the current workflow's execution waits for a person's input;
  the job run waits with it and goes on once that execution ends.
- ``Completed``: every workflow ended ``Completed`` or ``CompletedWithNoActionTaken``.
- ``Failed``: a workflow failed and the run stopped there; with ``continue_on_failure``
  every workflow ran and at least one failed.
- ``Cancelled``: a workflow's execution was cancelled. A cancel is a person's decision
  to stop, so the run stops there even with ``continue_on_failure``.

Once recorded as ended, a job run's status is final, but for one way back: retrying
the failed execution of a ``Failed`` job run (``executions retry``, ``jobs retry``)
records it ``InProgress`` again, and it goes on from that workflow once the execution
completes (job_runs.JobRuns.reopened_for_retry). A cancelled one stays stopped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowledger.codec import loads
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage import Row
from flowledger.timeutil import iso

#: The format of the ``items`` column; bump it with an upgrade function when it changes.
JOB_RUN_FORMAT_VERSION = 1

_DONE = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED_NO_ACTION})


def trigger_key(job_run_id: str, index: int) -> str:
    """Makes "start item ``index``" happen once, whichever process gets there first."""
    return f"job:{job_run_id}:{index}"


def creator(job_run_id: str) -> str:
    """createdBy of the executions a job run starts."""
    return f"job:{job_run_id}"


@dataclass(frozen=True)
class Progress:
    status: ExecutionStatus
    #: The item to start now, if any.
    next_index: int | None = None
    #: The unfinished execution the run waits for, if any.
    waiting_on: str | None = None


def runs_by_index(job_run_id: str, executions: Sequence[Row]) -> dict[int, Row]:
    """Item index → its execution, recognised by the trigger key it was started with."""
    prefix = trigger_key(job_run_id, 0)[:-1]
    found: dict[int, Row] = {}
    for row in executions:
        key = row.get("trigger_key") or ""
        if key.startswith(prefix) and key[len(prefix) :].isdigit():
            found[int(key[len(prefix) :])] = row
    return found


def progress(count: int, continue_on_failure: bool, runs: Mapping[int, Row]) -> Progress:
    """What the job run should do next, walking its items in order."""
    failed = False
    for index in range(count):
        run = runs.get(index)
        if run is None:
            started = ExecutionStatus.IN_PROGRESS if runs else ExecutionStatus.NOT_STARTED
            return Progress(started, next_index=index)
        status = ExecutionStatus(run["runtime_status"])
        if status == ExecutionStatus.AWAITING_USER_INPUT:
            return Progress(status, waiting_on=run["id"])
        if not status.terminal:
            return Progress(ExecutionStatus.IN_PROGRESS, waiting_on=run["id"])
        if status == ExecutionStatus.CANCELLED:
            return Progress(status)
        if status == ExecutionStatus.FAILED:
            if not continue_on_failure:
                return Progress(status)
            failed = True
    return Progress(ExecutionStatus.FAILED if failed else ExecutionStatus.COMPLETED)


def items_of(row: Row) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(row["items"])
    return items


def current(row: Row, executions: Sequence[Row]) -> Progress:
    """The live progress of a job run; a recorded end is final."""
    if not ExecutionStatus(row["status"]).terminal:
        runs = runs_by_index(row["id"], executions)
        return progress(len(items_of(row)), bool(row["continue_on_failure"]), runs)
    return Progress(ExecutionStatus(row["status"]))


def job_run_document(row: Row, executions: Sequence[Row]) -> dict[str, Any]:
    """The job run as ``flowledger jobs show --json`` and ``GET /job-runs/{id}`` give it;
    each run carries its execution's ``error`` (as the execution document has it), so a
    failed job run says why without a second lookup."""
    runs = runs_by_index(row["id"], executions)
    status = current(row, executions).status
    completed_at = row["completed_at"]
    if status.terminal and completed_at is None:  # ended, not yet recorded by its advancer
        completed_at = _last_end(runs.values())
    return {
        "id": row["id"],
        "name": row["name"],
        "status": str(status),
        "continueOnFailure": bool(row["continue_on_failure"]),
        "createdAt": iso(row["created_at"]),
        "startedAt": _iso(row["started_at"]),
        "completedAt": _iso(completed_at) if status.terminal else None,
        "createdBy": row["created_by"],
        "runs": [
            {
                "index": index,
                "workflowName": item["workflowName"],
                "workflowVersion": item["workflowVersion"],
                "input": item["input"],
                "executionId": runs[index]["id"] if index in runs else None,
                "runtimeStatus": runs[index]["runtime_status"] if index in runs else None,
                "error": loads(runs[index]["error"]) if index in runs else None,
            }
            for index, item in enumerate(items_of(row))
        ],
    }


def _iso(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _last_end(runs: Any) -> datetime | None:
    ends = [r["completed_at"] or r["failed_at"] or r["last_activity_at"] for r in runs]
    return max(ends, default=None)
