"""The built-in ``sys.*`` step types, declared with the same API as user plugins."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flowledger.durations import Duration
from flowledger.errors import StepError, checked_error_code
from flowledger.jsonvalues import NotJSONError, storable, too_long
from flowledger.numbers import NumbersNotBooleans
from flowledger.steps.base import StepContext, StepKind, StepType, Suspend, VariableOp, step_type
from flowledger.steps.human import wait_for_input
from flowledger.steps.subworkflow import SUB_WORKFLOW
from flowledger.templates import contains_template
from flowledger.templates.convert import truth
from flowledger.timeutil import iso


class _Input(NumbersNotBooleans):
    model_config = ConfigDict(extra="forbid")


# --- sys.condition -------------------------------------------------------------------------


class ConditionInput(_Input):
    expression: Any = Field(
        description="The condition: one `{{ … }}` template (or true/false). The `then` steps "
        'run when it holds, the `else` steps when not; empty, zero and the text "false" '
        "are false."
    )


class ConditionOutput(BaseModel):
    result: bool = Field(description="Whether the expression held.")
    evaluatedExpression: str = Field(description="The expression as written.")


@step_type("sys.condition", pure=True, kind=StepKind.CONDITION)
def condition(data: ConditionInput, ctx: StepContext) -> ConditionOutput:
    """Evaluate an expression; ``then``/``else`` targets run on its truth."""
    source = (
        ctx.definition_input.get("expression")
        if isinstance(ctx.definition_input, Mapping)
        else None
    )
    return ConditionOutput(
        result=truth(data.expression),
        evaluatedExpression=str(source if source is not None else data.expression),
    )


# --- sys.transform -------------------------------------------------------------------------


class TransformInput(_Input):
    value: Any = Field(
        description="Any JSON, its templates rendered: the step's output is this value."
    )


@step_type("sys.transform", pure=True, output_is_input="value")
def transform(data: TransformInput, ctx: StepContext) -> Any:
    """Output the rendered ``value``: reshape data without code."""
    return data.value


# --- sys.set_variable ----------------------------------------------------------------------


#: A variable's name, in ``variables:`` and in ``sys.set_variable``: read as variables.NAME.
VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class SetVariableInput(_Input):
    name: str = Field(
        pattern=VARIABLE_NAME,
        description="The variable, read as `variables.<name>` (letters, digits and '_').",
    )
    value: Any = Field(
        None,
        description="What to set, the number to increment by (1 when absent), the item to "
        "append, or the object to merge.",
    )
    op: str = Field(
        "set",
        description="`set`, `increment`, `append` (to a list) or `merge` (into an object); "
        "atomic, however many steps change the variable at once.",
    )

    @field_validator("op")
    @classmethod
    def _known_op(cls, op: str) -> str:
        if op not in VARIABLE_OPS:
            raise ValueError(f"op must be one of {', '.join(VARIABLE_OPS)}, not {op!r}")
        return op

    @model_validator(mode="after")
    def _increment_by_a_number(self, info: ValidationInfo) -> SetVariableInput:
        # apply_variable_op fails on it at run time: a literal one is refused before the
        # run. A stored version is read as it was accepted (numbers.LENIENT).
        value, context = self.value, info.context
        lenient = isinstance(context, dict) and bool(context.get("booleans_as_numbers"))
        if self.op == "increment" and value is not None and not _is_number(value) and not lenient:
            shown = str(value).lower() if isinstance(value, bool) else repr(value)
            raise ValueError(f"increment takes a number as its value, not {shown}")
        # So does merge of anything but an object ("both it and the value must be objects").
        if self.op == "merge" and not isinstance(value, Mapping) and not lenient:
            if "value" not in self.model_fields_set:
                raise ValueError("merge takes an object as its value, and none is given")
            raise ValueError(f"merge takes an object as its value, not {_a_kind(value)}")
        return self


def _a_kind(value: Any) -> str:
    """What a literal value is, in words, and the value when it is short: "a number (3)"."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    kind = "a boolean" if isinstance(value, bool) else "a number" if _is_number(value) else "text"
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    return f"{kind} ({shown})" if len(shown) <= 40 else kind


class SetVariableOutput(BaseModel):
    """``value`` is the variable's new value after ``set`` and ``increment``, and what was
    added to it after ``append`` and ``merge``: the whole new list in every step's output
    made a loop that collects n items store 1+2+…+n of them (8,000 small items: 150 MB
    of outputs, 1.4 GB of memory). The variable itself is ``variables.<name>``."""

    name: str = Field(description="The variable's name.")
    value: Any = Field(
        description="Its new value after `set` and `increment`; what was added after "
        "`append` and `merge` (the variable itself is `variables.<name>`)."
    )
    op: str = Field("set", description="The op applied.")


VARIABLE_OPS = ("set", "increment", "append", "merge")


def apply_variable_op(current: Any, op: str, value: Any, name: str) -> Any:
    """The new value of a variable after ``op``; raises StepError when the types do not
    fit, or when JSON cannot hold the value or the result (NaN, an infinity, a lone
    surrogate, an object): the variable is stored as JSON, and what the engine holds
    must be what a resumed run reads back. A value is converted as an output is (a
    datetime to ISO text)."""
    if op not in VARIABLE_OPS:
        # It fell through to merge: "sett" merged, and "frobnicate" said it could not merge.
        raise StepError(
            f"unknown op {op!r} for variable '{name}': use one of {', '.join(VARIABLE_OPS)}",
            retryable=False,
        )
    value = variable_value(value, op, name)
    if op == "set":
        return value
    if op == "increment":
        amount = 1 if value is None else value
        base = 0 if current is None else current
        if not _is_number(base) or not _is_number(amount):
            raise StepError(
                f"cannot increment variable '{name}': it holds {type(base).__name__} "
                f"and the value is {type(amount).__name__}; both must be numbers",
                retryable=False,
            )
        try:
            total = base + amount
        except OverflowError:  # a huge int plus a float
            total = math.inf
        # Stored, an infinity read null; an integer past 4,300 digits failed the commit.
        if total in (math.inf, -math.inf) or (type(total) is int and too_long(total)):
            raise StepError(
                f"cannot increment variable '{name}': the result is too large for a number "
                "JSON can hold",
                retryable=False,
            )
        return total
    if op == "append":
        base = [] if current is None else current
        if not isinstance(base, list):
            raise StepError(
                f"cannot append to variable '{name}': it holds {type(base).__name__}, not a list",
                retryable=False,
            )
        return [*base, value]
    base = {} if current is None else current
    if not isinstance(base, dict) or not isinstance(value, dict):
        raise StepError(
            f"cannot merge into variable '{name}': both it and the value must be objects",
            retryable=False,
        )
    return {**base, **value}


def variable_value(value: Any, op: str, name: str) -> Any:
    """``value`` as JSON data (converted as an output is), or StepError naming the
    variable and where in the value JSON cannot hold it."""
    try:
        return storable(value, "value")
    except NotJSONError as exc:
        verb = {"append": "append to", "merge": "merge into"}.get(op, op)
        raise StepError(f"cannot {verb} variable '{name}': {exc}", retryable=False) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@step_type("sys.set_variable", pure=True, sets_variable=True)
def set_variable(data: SetVariableInput, ctx: StepContext) -> SetVariableOutput:
    """Change a user variable atomically (set, increment, append, merge)."""
    if ctx.variables is None:  # pragma: no cover - the runtime always provides it
        raise StepError("variables are not available here", retryable=False)
    new = ctx.variables.apply(data.name, cast(VariableOp, data.op), data.value)  # validated
    added = data.op in _ADDING_OPS
    return SetVariableOutput(name=data.name, value=data.value if added else new, op=data.op)


#: Ops whose output holds what was added, not the new value (SetVariableOutput).
_ADDING_OPS = ("append", "merge")


def variable_after(current: Any, output: Mapping[str, Any]) -> Any:
    """The value of the variable a ``sys.set_variable`` step changed, after it: ``current``
    is its value before (rerun and the stage records rebuild variables from outputs).
    An output stored before ``op`` was recorded holds the new value."""
    op = output.get("op")
    if op in _ADDING_OPS:
        return apply_variable_op(current, str(op), output.get("value"), str(output["name"]))
    return output.get("value")


# --- sys.no_action / sys.fail --------------------------------------------------------------


class NoActionInput(_Input):
    reason: str | None = Field(None, description="Why there was nothing to do.")


class NoActionOutput(BaseModel):
    reason: str | None = Field(description="The reason given.")


@step_type("sys.no_action", pure=True, kind=StepKind.NO_ACTION)
def no_action(data: NoActionInput, ctx: StepContext) -> NoActionOutput:
    """Mark that there was nothing to do: the execution ends CompletedWithNoActionTaken."""
    return NoActionOutput(reason=data.reason)


class FailInput(_Input):
    message: str = Field(
        "the workflow failed at a sys.fail step",
        description="The error the step and the execution fail with.",
    )
    code: Annotated[str, AfterValidator(checked_error_code)] = Field(
        "step",
        description="The error's code (`steps.<id>.error.code`, the execution's "
        "`error.code`): a letter, then up to 63 letters, digits, `_`, `.` or `-`.",
    )


class NoOutput(BaseModel):
    """sys.fail never completes, so it has no output fields."""

    model_config = ConfigDict(extra="forbid")


@step_type("sys.fail", pure=True)
def _fail(data: FailInput, ctx: StepContext) -> NoOutput:
    """Fail the step and the execution with ``message`` and ``code``."""
    raise StepError(data.message, retryable=False, code=data.code)


fail = dataclasses.replace(_fail, never_completes=True)  # a trait of built-ins only


# --- sys.delay -----------------------------------------------------------------------------


class DelayInput(_Input):
    """``duration``: '500ms', '30s', '5m', '2h', '2d', ISO-8601 'PT30S', or a bare number
    of seconds (``duration: 90``); or ``until``: a time with its zone."""

    duration: Duration | None = Field(
        None,
        description="How long to wait from the step's start: 500ms, 30s, 5m, 2h, 2d, "
        "ISO-8601 (PT30S) or a number of seconds. Give this or `until`.",
    )
    until: datetime | None = Field(
        None,
        description="When to wake: an ISO-8601 time with its zone (2026-11-22T10:00:00Z), "
        "often a template; a time already past wakes at once. Give this or `duration`.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> DelayInput:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give exactly one of 'duration' or 'until'")
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("'until' needs a timezone, e.g. 2026-11-22T10:00:00Z")
        return self


class DelayOutput(BaseModel):
    resumedAt: str = Field(description="When the step woke (ISO-8601, UTC).")


def _wake_time(data: DelayInput, started_at: datetime) -> datetime:
    if data.until is not None:
        return data.until.astimezone(UTC)
    return started_at + (data.duration or timedelta(0))


async def _delay(data: DelayInput, ctx: StepContext) -> Suspend:
    # The wake time derives from the step's recorded start, so a restart does not extend it.
    return Suspend(until=_wake_time(data, ctx.started_at))


async def _delay_resume(data: Any, ctx: StepContext, state: Mapping[str, Any]) -> DelayOutput:
    return DelayOutput(resumedAt=iso(ctx.now()))


DELAY = StepType(
    name="sys.delay",
    handler=_delay,
    input_model=DelayInput,
    output_model=DelayOutput,
    resume=_delay_resume,
    description="Wait for a duration or until a time; durable across restarts.",
    timeout_has_no_effect=True,
)


# --- sys.loop (structural: the scheduler runs its body) ------------------------------------


#: Items one sys.loop runs: every iteration is rows and results held by one execution.
#: Lowered from 100,000, which was never fast: a loop of 10,000 one-step iterations takes
#: about 5 s on SQLite here (100,000 took minutes). Raise it with the loop's hot path.
MAX_LOOP_ITEMS = 10_000


def _a_template(value: Any) -> Any:
    if value is not None and not (isinstance(value, str) and contains_template(value)):
        raise ValueError(
            'until must be a template of a condition, like "{{ steps.check.output.body.done '
            '}}": it is evaluated after each iteration, and the loop ends once it holds'
        )
    return value


def loop_input_rules(data: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    """The rules between sys.loop's fields, on the input as written or as validated.

    Exactly one of ``items`` (the body runs once per item, as before) or ``until`` (the
    body runs, one iteration after another, until the condition holds after one).
    ``max_iterations`` is required with ``until``: there is no bound that fits both 10
    polls and 10,000 pages, and a loop that never ends must not look like one that
    works. An until loop is sequential (each iteration may read the one before, and
    ``until`` decides whether another one runs at all), so ``concurrency`` must be 1."""
    has_items, has_until = data.get("items") is not None, data.get("until") is not None
    if has_items == has_until:
        return [
            (
                None,
                "give exactly one of 'items' (run the body once per item) or 'until' (run "
                "it again until a condition holds after an iteration)",
            )
        ]
    problems: list[tuple[str | None, str]] = []
    if has_items and data.get("max_iterations") is not None:
        problems.append(
            (
                "max_iterations",
                "max_iterations bounds a loop with 'until'; a loop over items runs once per item",
            )
        )
    if not has_until:
        return problems
    if data.get("max_iterations") is None:
        problems.append(
            (
                None,
                "a loop with 'until' needs max_iterations, the most iterations it may run "
                f"(1 to {MAX_LOOP_ITEMS:,}); reaching it with until still false fails the step",
            )
        )
    concurrency = data.get("concurrency", 1)
    if _is_number(concurrency) and concurrency != 1:
        problems.append(
            (
                "concurrency",
                f"a loop with 'until' runs one iteration after another (each may read the "
                f"one before, and until decides whether another runs), so concurrency must "
                f"be 1, not {concurrency}",
            )
        )
    return problems


class LoopInput(_Input):
    """``items`` or ``until`` (see :func:`loop_input_rules`). ``until`` is kept as written:
    the loop's driver renders it after each iteration (StepType.iteration_end_field)."""

    items: list[Any] | None = Field(
        None,
        max_length=MAX_LOOP_ITEMS,
        description="The body runs once per item; it reads `loop.<id>.item` and "
        "`loop.<id>.index` (from 0). Give this or `until`.",
    )
    until: Annotated[Any, AfterValidator(_a_template)] = Field(
        None,
        description="Instead of `items`: a condition template, evaluated after each "
        "iteration in its scope; the loop ends once it holds.",
    )
    max_iterations: int | None = Field(
        None,
        ge=1,
        le=MAX_LOOP_ITEMS,
        description="With `until` (required there): the most iterations; reaching it with "
        "`until` still false fails the step.",
    )
    concurrency: int = Field(
        1, ge=1, le=1000, description="Iterations that run at once; 1 with `until`."
    )

    @model_validator(mode="after")
    def _rules(self) -> LoopInput:
        problems = loop_input_rules(self.__dict__)
        if problems:
            raise ValueError(problems[0][1])
        return self


class LoopOutput(BaseModel):
    count: int = Field(description="The iterations run.")
    results: list[dict[str, Any]] = Field(
        description="One per iteration, in item order: each body step's id to its output."
    )


LOOP = StepType(
    name="sys.loop",
    handler=None,  # structural: runtime/loops.py drives it
    input_model=LoopInput,
    output_model=LoopOutput,
    kind=StepKind.LOOP,
    description=(
        "Run the body graph once per item, with bounded concurrency; or again and again "
        "until a condition holds after an iteration."
    ),
    iteration_end_field="until",
    input_rules=loop_input_rules,
)

#: The built-in step types defined here and in the runtime's own step modules; the HTTP
#: and entity ones load when first named (steps.registry.LAZY_BUILTINS).
BUILTIN_STEP_TYPES: tuple[StepType, ...] = (
    condition,
    transform,
    set_variable,
    no_action,
    fail,
    DELAY,
    LOOP,
    wait_for_input,
    SUB_WORKFLOW,
)
