"""The definition document as pydantic models: the shape of SPEC §1, checked field by field."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from flowledger.definition.strictness import checking_new
from flowledger.durations import Duration
from flowledger.errors import checked_error_code
from flowledger.numbers import NumbersNotBooleans

STEP_ID_PATTERN = r"^[a-z_][a-z0-9_]*$"
WORKFLOW_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
#: What WORKFLOW_NAME_PATTERN asks, in words.
WORKFLOW_NAME_RULE = "use letters, digits, '_', '.' and '-', starting with a letter or a digit"
#: The definition format this code reads; a document may state it as ``format_version``.
DEFINITION_FORMAT_VERSION = 1
#: Steps in one graph: validation is near-linear, so generated workflows of this size load.
MAX_STEPS = 20_000


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetryPolicy(_Frozen, NumbersNotBooleans):
    """How a failing step is attempted again; delays grow from initial_delay to max_delay
    (``linear``: initial_delay times the attempt; ``exponential``: times multiplier each time)."""

    max_attempts: int = Field(3, ge=1, le=1000)
    backoff: Literal["fixed", "linear", "exponential"] = "exponential"
    initial_delay: Duration = timedelta(seconds=1)
    max_delay: Duration = timedelta(minutes=5)
    multiplier: float = Field(2.0, ge=1.0, le=10.0)
    #: Full jitter spreads retries of many executions so they do not hammer a service together.
    jitter: bool = True
    #: The failure codes tried again (``timeout``, ``http.5xx``); ``http`` also takes every
    #: ``http.…`` code. None: every retryable failure is. Not ``on``: YAML 1.1 reads a bare
    #: ``on`` key as a boolean, which the loader refuses (definition.source).
    codes: list[Annotated[str, AfterValidator(checked_error_code)]] | None = Field(
        None, min_length=1
    )
    #: The failure codes never tried again, matched as ``codes`` are (Temporal's
    #: NonRetryableErrorTypes: "everything but CardDeclined"); it wins over ``codes``.
    except_codes: list[Annotated[str, AfterValidator(checked_error_code)]] | None = Field(
        None, min_length=1
    )

    def retries(self, code: str) -> bool:
        """Whether a retryable failure with ``code`` is tried again under this policy."""
        return self.refusal(code) is None

    def refusal(self, code: str) -> str | None:
        """Why a retryable failure with ``code`` is not tried again, or None when it is."""
        if self.except_codes is not None and _listed(code, self.except_codes):
            return f"code {code} is in retry.except_codes"
        if self.codes is not None and not _listed(code, self.codes):
            return f"code {code} is not in retry.codes"
        return None


def _listed(code: str, listed: list[str]) -> bool:
    """``code`` is one of ``listed`` or below one of them (``http`` lists ``http.5xx``)."""
    return any(code == name or code.startswith(name + ".") for name in listed)


def _fixed_duration(value: Any, info: ValidationInfo) -> Any:
    """A ``timeout`` or ``due`` is read when the definition is, before anything runs: a
    template would only fail as "not a duration". sys.wait_for_input's input.due is
    rendered."""
    if isinstance(value, str) and "{{" in value:
        instead = (
            "; a sys.wait_for_input computes its deadline in input.due instead"
            if info.field_name == "due"
            else ""
        )
        raise ValueError(
            f"is read before the run and takes a fixed duration, not a template{instead}"
        )
    return value


def _some_duration(value: timedelta | None) -> timedelta | None:
    """A ``timeout`` of 0 or less would end what it bounds before it could begin."""
    if value is not None and value <= timedelta(0) and checking_new():
        raise ValueError("must be longer than 0 (leave it out for no timeout)")
    return value


#: A ``due``: a duration fixed in the definition (read before anything runs).
FixedDuration = Annotated[Duration | None, BeforeValidator(_fixed_duration)]
#: A ``timeout`` (a step's or the workflow's): fixed, and longer than 0.
Timeout = Annotated[FixedDuration, AfterValidator(_some_duration)]


class StepSpec(_Frozen):
    id: str = Field(pattern=STEP_ID_PATTERN, max_length=128)
    type: str = Field(min_length=1, max_length=200)
    name: str | None = None
    description: str | None = None
    input: Any = None
    after: list[str] | None = None
    when: str | bool | None = None
    then: list[str] | None = None
    else_: list[str] | None = Field(default=None, alias="else")
    retry: RetryPolicy | None = None
    timeout: Timeout = None
    #: The longest an attempt's handler may go without a ``ctx.heartbeat``, counted from
    #: its start: a step that hangs is ended (code ``timeout.heartbeat``) and retried long
    #: before its ``timeout`` (runtime.heartbeats.HeartbeatWatch).
    heartbeat_timeout: Timeout = None
    due: FixedDuration = None
    #: ``all``: the step waits for every predecessor (SPEC §1). ``first``: it runs when
    #: the first completes, and the rest of the race is cancelled (definition.races).
    join: Literal["all", "first"] = "all"
    continue_on_error: bool = False
    output_schema: dict[str, Any] | None = None
    steps: list[StepSpec] | None = None


class TriggerSpec(BaseModel):
    """A trigger. Only ``type`` is checked here; each trigger kind validates its own fields."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: Literal["function", "webhook", "schedule", "entity"]


class OnFailureSpec(_Frozen):
    """``on_failure``: the pushed workflow started when an execution ends Failed
    (runtime.failure_handlers)."""

    workflow: str = Field(pattern=WORKFLOW_NAME_PATTERN)


class WorkflowSpec(_Frozen):
    format_version: Literal[1] = 1
    name: str = Field(pattern=WORKFLOW_NAME_PATTERN)
    description: str = ""
    input_schema: dict[str, Any] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    #: Bounds the whole execution from its start (``startedAt``; time queued NotStarted
    #: does not count): when it passes, what runs is cancelled and the execution fails
    #: with code ``timeout`` (runtime.deadline).
    timeout: Timeout = None
    on_failure: OnFailureSpec | None = None
    triggers: list[TriggerSpec] = Field(default_factory=list)
    steps: list[StepSpec] = Field(min_length=1, max_length=MAX_STEPS)

    @field_validator("on_failure")
    @classmethod
    def _not_itself(cls, value: OnFailureSpec | None, info: ValidationInfo) -> Any:
        if value is not None and value.workflow == info.data.get("name"):
            # Its failure would start it, and its failure start it again.
            raise ValueError("names this workflow itself: name another workflow")
        return value
