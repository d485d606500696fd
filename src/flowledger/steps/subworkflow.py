"""``sys.sub_workflow``: start child executions and wait for them (SPEC §2).

The runtime does the work (runtime/children.py): it creates the children in the
same commit that records the step as waiting, and finishes the step when every
child is terminal. This module declares the step's input and output.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowledger.numbers import NumbersNotBooleans
from flowledger.steps.base import StepKind, StepType

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


class ChildExecution(BaseModel):
    id: str = Field(description="The child execution's id.")
    runtimeStatus: str = Field(description="Its status when it ended.")
    output: Any = Field(None, description="Its output.")


class SubWorkflowOutput(BaseModel):
    executions: list[ChildExecution] = Field(
        description="One per child, in item order (as soon as one fails, the step fails "
        "and the others are cancelled)."
    )


SUB_WORKFLOW = StepType(
    name="sys.sub_workflow",
    handler=None,  # structural: runtime/children.py drives it
    input_model=SubWorkflowInput,
    output_model=SubWorkflowOutput,
    kind=StepKind.SUB_WORKFLOW,
    description="Start child executions of another workflow and wait for them.",
)
