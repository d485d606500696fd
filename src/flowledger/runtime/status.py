"""Status strings of SPEC §4 and the moves between them."""

from __future__ import annotations

from enum import StrEnum

# Defined with the vocabulary (flowledger.types), which storage may import: its queries
# are typed with it (ExecutionQuery.status).
from flowledger.types import TERMINAL_EXECUTION as TERMINAL_EXECUTION
from flowledger.types import ExecutionStatus as ExecutionStatus

ALLOWED_MOVES: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    ExecutionStatus.NOT_STARTED: frozenset(
        {ExecutionStatus.IN_PROGRESS, ExecutionStatus.CANCELLED}
    ),
    ExecutionStatus.IN_PROGRESS: frozenset(
        {
            ExecutionStatus.AWAITING_USER_INPUT,
            ExecutionStatus.COMPLETED,
            ExecutionStatus.COMPLETED_NO_ACTION,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        }
    ),
    ExecutionStatus.AWAITING_USER_INPUT: frozenset(
        {ExecutionStatus.IN_PROGRESS, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
    ),
    ExecutionStatus.FAILED: frozenset({ExecutionStatus.IN_PROGRESS}),
    ExecutionStatus.COMPLETED: frozenset(),
    ExecutionStatus.COMPLETED_NO_ACTION: frozenset(),
    ExecutionStatus.CANCELLED: frozenset(),
}


class StepStatus(StrEnum):
    NOT_STARTED = "NotStarted"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    DISABLED = "Disabled"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
