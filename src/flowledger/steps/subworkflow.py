"""``sys.sub_workflow``: start child executions and wait for them (SPEC §2).

The runtime does the work (runtime/children.py): it creates the children in the
same commit that records the step as waiting, and finishes the step when every
child is terminal. This module declares the step's input and output.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from flowledger.numbers import NumbersNotBooleans
from flowledger.steps.base import StepKind, StepType
from flowledger.steps.tolerance import parse_tolerance

#: Children one step starts: each is a whole execution (split bigger batches in a loop).
MAX_CHILDREN = 10_000
#: ``Suspend.state["wait"]`` of a step waiting for its children.
CHILDREN_WAIT = "children"


class SubWorkflowInput(NumbersNotBooleans):
    model_config = ConfigDict(extra="forbid")

    workflow: str = Field(
        min_length=1, max_length=128, description="The name of the pushed workflow to start."
    )
    version: int | Literal["latest"] | None = Field(
        None,
        description="A version number, or `latest` (the pushed version, else the newest "
        "stored), as when not given.",
    )
    input: Any = Field(
        None,
        description="The child's input; with `items`, rendered once per item "
        "(`loop.<this step's id>.item` and `.index`).",
    )
    items: list[Any] | None = Field(
        default=None,
        max_length=MAX_CHILDREN,
        description="Start one child per item; without it, one child.",
    )
    concurrency: int = Field(10, ge=1, le=1000, description="Children that run at once.")
    tolerated_failures: Annotated[int | str | None, BeforeValidator(parse_tolerance)] = Field(
        None,
        description="How many children may fail (end `Failed` or `Cancelled`) without "
        'failing the step: a count (`3`) or a percentage of the children (`"10%"`, rounded '
        "down); one more fails it and cancels the rest. Without it, the first failure does.",
    )


class ChildError(BaseModel):
    """A failed child's error: the step error shape (README), ``Cancelled`` children's
    ``cancelledBy`` among what else it may carry."""

    model_config = ConfigDict(extra="allow")

    message: str = Field(description="What went wrong.")
    code: str | None = Field(None, description="The failure's code (`step`, `timeout`, ...).")
    stepId: str | None = Field(None, description="The child's step that failed.")
    attempt: int | None = Field(None, description="That step's attempt.")
    details: Any = Field(None, description="More about it, as the failing step gave it.")


class ChildExecution(BaseModel):
    id: str = Field(description="The child execution's id.")
    runtimeStatus: str = Field(description="Its status when it ended.")
    output: Any = Field(None, description="Its output.")
    error: ChildError | None = Field(
        None, description="A failed child's error; null for the others."
    )


class SubWorkflowOutput(BaseModel):
    executions: list[ChildExecution] = Field(
        description="One per child, in item order (as soon as more fail than "
        "`tolerated_failures`, the step fails and the others are cancelled)."
    )
    failedCount: int = Field(
        0, description="The children that failed, within `tolerated_failures`."
    )


SUB_WORKFLOW = StepType(
    name="sys.sub_workflow",
    handler=None,  # structural: runtime/children.py drives it
    input_model=SubWorkflowInput,
    output_model=SubWorkflowOutput,
    kind=StepKind.SUB_WORKFLOW,
    description="Start child executions of another workflow and wait for them.",
)
