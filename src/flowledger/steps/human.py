"""``sys.wait_for_input``: park the execution until a person submits data (SPEC §2, §4).

The handler only asks to wait; the runtime keeps the step ``InProgress`` and the
execution ``AwaitingUserInput``, checks submissions against ``schema``, and ends the
wait when data arrives, or when ``due`` passes (failing, or taking ``on_timeout``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowledger.durations import Duration
from flowledger.errors import format_path
from flowledger.numbers import NumbersNotBooleans
from flowledger.schema_check import problem_lines, schema_problem, validator_for
from flowledger.steps.base import StepKind, StepType

#: ``Suspend.state["wait"]`` of a step waiting for a person.
INPUT_WAIT = "input"


class OnTimeout(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Any = Field(None, description="The step's output when nobody answered in time.")


class WaitForInputInput(NumbersNotBooleans):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prompt: str = Field(
        min_length=1, max_length=10_000, description="What the person is asked (templated)."
    )
    json_schema: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description="The JSON Schema the submitted data must match: the step's output is "
        "that data (any JSON when absent).",
    )
    assignee: str | None = Field(
        None, description="Who is asked: shown with the waiting step, not enforced."
    )
    due: Duration | None = Field(
        None,
        description="How long to wait (the step-level `due` works too; the earlier one "
        "wins); when it passes the step fails, unless `on_timeout` gives a default.",
    )
    on_timeout: OnTimeout | None = Field(
        None, description="What the step does when `due` passes: `{default: …}`."
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            found = schema_problem(schema)
            if found is not None:
                where = format_path(found[0])
                raise ValueError(
                    f"schema is not a valid JSON Schema: {where + ': ' if where else ''}{found[1]}"
                )
        return schema

    @model_validator(mode="after")
    def _default_fits(self) -> WaitForInputInput:
        # The default stands for an answer: it is the output later steps read, so it
        # must be one the schema would take.
        if self.json_schema is not None and self.on_timeout is not None:
            default = self.on_timeout.default
            problems = problem_lines(validator_for(self.json_schema), default, "default")
            if problems:
                raise ValueError(
                    "on_timeout.default does not match the schema: " + "; ".join(problems)
                )
        return self


#: Structural: runtime/waits.py parks the step (``Suspend.state["wait"] == INPUT_WAIT``)
#: and ends the wait when checked data arrives or the step is due.
wait_for_input = StepType(
    name="sys.wait_for_input",
    handler=None,
    input_model=WaitForInputInput,
    kind=StepKind.WAIT_FOR_INPUT,
    output_schema_in_input="schema",
    description="Wait for a person's input, validated against ``schema``.",
)


def input_problems(schema: dict[str, Any] | None, data: Any) -> list[str]:
    """Each way ``data`` breaks ``schema``, as ``data.field: message`` sentences."""
    if schema is None:
        return []
    return problem_lines(validator_for(schema), data, "data")
