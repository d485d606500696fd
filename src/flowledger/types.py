"""The shared vocabulary: types that several layers use, named as SPEC and the seed name them.

Words, once (SPEC §4 and the seed runtime):

- **workflow template version**: one stored, immutable version of a definition
  (``WorkflowVersion``); a workflow *name* has many.
- **execution**: one run of a workflow template version, with its own **data store**
  (trigger, every step's output, variables, context, loop state).
- **step execution**: one step's life inside an execution; a loop body step has one
  per iteration. Each retry of it is an **attempt** (counted from 1).
- **event**: one entry of an execution's gap-free history.
- **job run**: several executions started in order from a job file.
- **store** alone means the database interface (``flowledger.storage.Store``); the
  execution's values are its *data store*; entities live in the *entity store*.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

#: A database row as a plain mapping of column name to value.
Row = dict[str, Any]
#: One step into a JSON document: a mapping key or a list index.
PathSegment = str | int
#: Where a value sits in a JSON document: ``("steps", 2, "input", "url")``.
FieldPath = tuple[PathSegment, ...]
#: Any JSON value (kept loose on purpose: user data is arbitrary JSON).
JSON = Any
#: SPEC §4's execution statuses, as documents spell them (runtime.status.ExecutionStatus
#: holds the same values): an enum in the OpenAPI document, so typed clients get one.
ExecutionStatusName = Literal[
    "NotStarted",
    "InProgress",
    "AwaitingUserInput",
    "Completed",
    "CompletedWithNoActionTaken",
    "Failed",
    "Cancelled",
]


class ExecutionStatus(StrEnum):
    """SPEC §4's execution statuses (``ExecutionStatusName``'s values; the moves between
    them are runtime.status's, which exports this too)."""

    NOT_STARTED = "NotStarted"
    IN_PROGRESS = "InProgress"
    AWAITING_USER_INPUT = "AwaitingUserInput"
    COMPLETED = "Completed"
    COMPLETED_NO_ACTION = "CompletedWithNoActionTaken"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_EXECUTION


TERMINAL_EXECUTION = frozenset(
    {
        ExecutionStatus.COMPLETED,
        ExecutionStatus.COMPLETED_NO_ACTION,
        ExecutionStatus.FAILED,
        ExecutionStatus.CANCELLED,
    }
)
#: SPEC §4's step statuses (runtime.status.StepStatus).
StepStatusName = Literal["NotStarted", "InProgress", "Completed", "Disabled", "Failed", "Cancelled"]


class ChildReference(TypedDict):
    """One entry of ``childWorkflowExecutions`` (SPEC §4, the seed's shape)."""

    id: str


class StepDocument(TypedDict):
    """A step execution as SPEC §4 shows it, keyed by its id in ``steps``."""

    id: str
    type: str
    stepId: str
    status: StepStatusName
    attempt: int
    startedAt: str | None
    completedAt: str | None
    failedAt: str | None
    dueAt: str | None
    inputData: Any
    outputData: Any
    error: Any
    loop: dict[str, int]
    childWorkflowExecutions: list[ChildReference]


class PendingInput(TypedDict):
    """A step waiting for a person: what to ask, of whom, by when (``pendingInputs``);
    ``executionId`` is the execution the step belongs to (a descendant's, when the
    execution waits through its children)."""

    executionId: str
    stepExecutionId: str
    stepId: str
    prompt: Any
    schema: Any
    assignee: Any
    dueAt: str | None


class ExecutionDocument(TypedDict):
    """SPEC §4's execution; ``steps`` and ``pendingInputs`` only on a single execution."""

    id: str
    correlationId: str | None
    parentWorkflowExecutionId: str | None
    rootWorkflowExecutionId: str | None
    workflowTemplateVersionId: str
    workflowName: str
    workflowVersion: int
    runtimeStatus: ExecutionStatusName
    currentStateName: str | None
    startedAt: str | None
    completedAt: str | None
    failedAt: str | None
    lastActivityAt: str
    createdAt: str
    createdBy: str
    context: Any
    trigger: Any
    #: What templates read as ``input``: the function trigger's arguments or the
    #: webhook body; null for other triggers.
    input: Any
    variables: Any
    output: Any
    error: Any
    rerunOf: str | None
    jobRunId: str | None
    steps: NotRequired[dict[str, StepDocument]]
    pendingInputs: NotRequired[list[PendingInput]]
    #: While the execution, not ended, has not yet taken that many cancels and inputs sent
    #: to it (a control verb's answer, and every read of one execution): accepted, pending.
    pendingSignals: NotRequired[int]
    #: Only in a cancel's answer (carried on here): the ids of descendants still running in
    #: other processes, whose holders act on the cancel that reached them.
    pendingChildren: NotRequired[list[str]]


class ExecutionStatusDocument(TypedDict):
    """What ``Engine.drive(..., document=False)`` answers: reading every step back is
    not free for a big run."""

    id: str
    runtimeStatus: ExecutionStatusName


class EventDocument(TypedDict):
    """One entry of an execution's gap-free event history (SPEC §4)."""

    seq: int
    at: str
    kind: str
    stepExecutionId: str | None
    stepId: str | None
    attempt: int | None
    status: str | None
    #: A loop body's step event has its iterations here as ``loop`` (``{"each": 3}``, as
    #: its step document's ``loop``): the same step id repeats once per iteration.
    detail: Any
