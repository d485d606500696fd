"""Calling step handlers, and turning what they return or raise into step outcomes."""

from __future__ import annotations

import asyncio
import inspect
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from flowledger.definition.compiled import CompiledStep
from flowledger.definition.models import RetryPolicy
from flowledger.errors import field_message, format_path
from flowledger.jsonvalues import to_plain
from flowledger.runtime.heartbeats import HeartbeatWatch
from flowledger.runtime.reserved import resume_state
from flowledger.runtime.state import StepExecution
from flowledger.steps.base import StepContext, stored_loc
from flowledger.unions import plain_errors


async def invoke_handler(run: StepExecution, ctx: StepContext) -> Any:
    """Run (or resume) a step's handler within its timeout and heartbeat_timeout."""
    step_type = run.step.step_type
    handler = step_type.handler
    assert handler is not None  # structural kinds have no handler; their driver runs them
    data, run.validated = run.validated, None
    if data is None:
        data = step_type.input_model.model_validate(run.input)
    spec = run.step.spec
    try:
        if spec.timeout is None and spec.heartbeat_timeout is None:  # no timer: the hot path
            if step_type.is_coroutine and not run.suspended:  # the common case: no frame
                return await handler(data, ctx)
            return await _call(run, handler, data, ctx)
        return await _bounded(run, handler, data, ctx)
    except BaseException:
        # The attempt ends without output: details its heartbeat holds back for their
        # once-a-second write are saved now, for the next attempt to resume from.
        ctx.flush_heartbeat()
        raise


async def _bounded(run: StepExecution, handler: Any, data: BaseModel, ctx: StepContext) -> Any:
    """The handler's run within its step's ``timeout`` and ``heartbeat_timeout``."""
    spec = run.step.spec
    seconds = None if spec.timeout is None else spec.timeout.total_seconds()
    watch = None
    if spec.heartbeat_timeout is not None:
        watch = HeartbeatWatch(ctx, spec.heartbeat_timeout.total_seconds())
    try:
        # One deadline: the step's timeout, brought forward by the watch when it fires.
        async with asyncio.timeout(seconds) as deadline:
            if watch is None:
                return await _call(run, handler, data, ctx)
            watch.start(deadline)
            try:
                return await _call(run, handler, data, ctx)
            finally:
                watch.stop()
    except TimeoutError:
        if not deadline.expired():
            raise  # the handler's own (an inner wait_for, a socket): its message is kept
        if watch is not None and watch.fired:
            raise HeartbeatTimedOut(watch.seconds) from None
        assert seconds is not None  # only a timeout or the watch sets the deadline
        raise StepTimedOut(seconds) from None


class StepTimedOut(Exception):
    """The step's own ``timeout`` ended the attempt (not a TimeoutError its code raised)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g}s")
        self.seconds = seconds


class HeartbeatTimedOut(Exception):
    """The step's ``heartbeat_timeout`` passed without a ``ctx.heartbeat``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"sent no heartbeat for {seconds:g}s (its heartbeat_timeout)")
        self.seconds = seconds


async def _call(run: StepExecution, handler: Any, data: BaseModel, ctx: StepContext) -> Any:
    step_type = run.step.step_type
    if run.suspended and step_type.resume is not None:
        # The handler's own state, and the "input" that woke it (runtime.waits).
        state = resume_state(run.state)
        # A plain ``def`` resume is run as a plain handler is, in a thread.
        if step_type.resume_is_coroutine:
            return await step_type.resume(data, ctx, state)
        result = await asyncio.to_thread(step_type.resume, data, ctx, state)
    elif step_type.is_coroutine:
        return await handler(data, ctx)
    else:
        # Plain functions may block (I/O, CPU): keep them off the event loop.
        result = await asyncio.to_thread(handler, data, ctx)
    if inspect.isawaitable(result):
        return await result
    return result


#: The longest a step waits for a ``retry_after`` when its ``retry`` names no max_delay.
RETRY_AFTER_CAP = timedelta(hours=1)


@dataclass(frozen=True)
class RetryDecision:
    """Whether a failed attempt is tried again: after ``delay``, or not, and then why
    (``reason``, None when the step has no retry policy to explain)."""

    delay: timedelta | None
    reason: str | None = None


def retry_decision(
    run: StepExecution,
    now: datetime,
    retry_after: timedelta | None = None,
    code: str = "step",
    *,
    retryable: bool = True,
) -> RetryDecision:
    """When the next attempt starts, or why there is none (the failure is not retryable,
    its ``code`` is not taken by the policy, the policy's attempts are spent, the step
    would be due first). A ``retry_after`` the failure asked for (StepError's) is waited
    if it is longer than the policy's delay, up to the ``max_delay`` the step writes (else
    RETRY_AFTER_CAP): a server asking for a day is not obeyed blindly; the step tries
    sooner instead."""
    policy = run.step.spec.retry
    if policy is None:
        return RetryDecision(None)
    if not retryable:
        return RetryDecision(None, "the failure is not retryable")
    refusal = policy.refusal(code)
    if refusal is not None:
        return RetryDecision(None, refusal)
    if run.attempt >= policy.max_attempts:
        return RetryDecision(None, f"last of {policy.max_attempts} attempts")
    delay = _backoff(policy, run.attempt)
    if retry_after is not None:
        cap = policy.max_delay if "max_delay" in policy.model_fields_set else RETRY_AFTER_CAP
        delay = max(delay, min(retry_after, cap))
    if run.due_at is not None and now + delay >= run.due_at:
        return RetryDecision(None, "the next attempt would start after the step is due")
    return RetryDecision(delay)


def _backoff(policy: RetryPolicy, attempt: int) -> timedelta:
    """The policy's own delay after ``attempt`` failed, jitter included."""
    seconds = policy.initial_delay.total_seconds()
    if policy.backoff == "linear":
        seconds *= attempt
    elif policy.backoff == "exponential":
        seconds *= policy.multiplier ** (attempt - 1)
    seconds = min(seconds, policy.max_delay.total_seconds())
    if policy.jitter:
        seconds = random.uniform(seconds / 2, seconds)  # noqa: S311 - spreading, not security
    return timedelta(seconds=seconds)


def normalize_output(step: CompiledStep, result: Any) -> Any:
    """Plain JSON data, checked against the step type's output model when it has one;
    NotJSONError for what JSON cannot hold (jsonvalues: NaN, an arbitrary object)."""
    step_type = step.step_type
    if step_type.output_model is None and type(result) is dict:
        output = result  # the common case, without BaseModel's abstract-class isinstance
    else:
        output = step_type.dump_output(result)
    return to_plain(output, "output")


def storable_text(value: Any) -> None:
    """UnicodeEncodeError when ``value``, a text, holds what UTF-8 cannot store (a lone
    surrogate from ``"\\ud800"``); the common, ASCII case costs one scan."""
    if isinstance(value, str) and not value.isascii():
        value.encode("utf-8")


def validation_message(exc: ValidationError, stored_as: type[BaseModel] | None = None) -> str:
    """The errors on one line; with ``stored_as`` (an output model), each field named as
    the stored output names it (by alias), not by its Python name."""
    errors = exc.errors()
    if stored_as is not None:
        errors = [{**error, "loc": stored_loc(stored_as, error["loc"])} for error in errors]
    parts = []
    for error in plain_errors(errors):
        where = format_path(tuple(error["loc"]))
        msg = field_message(error)
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


#: Characters of an exception's text kept in the step's error (the document) and at the
#: head of its logged traceback: an HTTP client's error quoting a whole response body
#: made a 400 KB document, and pushed the traceback's frames out of the step log's line.
SHOWN_EXCEPTION = 2_000


def describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):  # one line, without pydantic's links
        return f"ValidationError in {exc.title}: {validation_message(exc)}"
    text = str(exc)
    return shortened(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def shortened(text: str, most: int = SHOWN_EXCEPTION) -> str:
    """``text``, or its first ``most`` characters and how many more were cut."""
    if len(text) <= most:
        return text
    return f"{text[:most]}… ({len(text) - most} more characters cut)"


def duration_detail(run: StepExecution) -> dict[str, Any] | None:
    if run.started_at is None or run.completed_at is None:
        return None
    return {"durationMs": int((run.completed_at - run.started_at).total_seconds() * 1000)}
