"""A workflow's ``timeout``: the deadline of one execution as a whole.

Decision: it is measured from the execution's ``startedAt`` (its first move to
InProgress), so time spent NotStarted in a queue does not count, and it is durable with
no column of its own: ``started_at`` is on the execution's row, and the definition
version it runs is fixed, so whichever process holds the execution computes the same
deadline. It goes on while the execution waits (for a person, a timer, children): the
runner wakes at it (ExecutionRunner._next_wake), and a parked execution's ``wake_at``
is no later than it, so a worker claims it then. A retry does not give a new budget
(``startedAt`` stays): one after the deadline is refused, as it would fail at once; a
rerun is a new execution, with its own start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.durations import spoken
from flowledger.timeutil import iso


def execution_deadline(workflow: CompiledWorkflow, started_at: datetime | None) -> datetime | None:
    """When an execution of ``workflow`` started at ``started_at`` times out (None: no
    ``timeout``, or not started yet)."""
    timeout = workflow.spec.timeout
    if timeout is None or started_at is None:
        return None
    return started_at + timeout


def timed_out(workflow: CompiledWorkflow, started_at: datetime | None) -> dict[str, Any]:
    """The execution's error when its workflow's timeout passed."""
    timeout = workflow.spec.timeout
    assert timeout is not None and started_at is not None
    return {
        "message": (
            f"the workflow's timeout ({spoken(timeout)}) passed: the execution started at "
            f"{iso(started_at)} and had not ended by {iso(started_at + timeout)}"
        ),
        "code": "timeout",
    }
