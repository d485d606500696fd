"""A failure's ``code``: stored in the step's error document and the step.failed event,
read by ``retry.codes`` (only listed codes are tried again) and by templates
(``steps.X.error.code``, the Catch of a ``continue_on_error`` step)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, step_type
from tests.conftest import RunYaml, statuses
from tests.runtime.steps_for_tests import Recorder, make_steps


class CodedInput(BaseModel):
    code: str | None = None
    retryable: bool = True


@step_type("test.coded")
async def coded(data: CodedInput, ctx: StepContext) -> dict[str, Any]:
    raise StepError(f"attempt {ctx.attempt} failed", code=data.code, retryable=data.retryable)


@pytest.fixture
def registry(recorder: Recorder) -> StepRegistry:
    registry = StepRegistry.with_builtins()
    for step in [*make_steps(recorder), coded]:
        registry.register(step)
    return registry


_FAST = "backoff: fixed, initial_delay: 10ms, jitter: false"


def _attempts(doc: dict[str, Any], step_id: str) -> list[dict[str, Any]]:
    runs = [s for s in doc["steps"].values() if s["stepId"] == step_id]
    return sorted(runs, key=lambda s: s["attempt"])


async def _failed_events(engine: Engine, execution_id: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in await engine.events(execution_id) if e["kind"] == "step.failed"]


def _retried(codes: str, attempts: int = 3) -> str:
    return f"retry: {{max_attempts: {attempts}, codes: {codes}, {_FAST}}}"


def _coded(code: str, codes: str) -> str:
    """A test.coded step failing with ``code`` ("{}": none), retried on ``codes``."""
    return f"type: test.coded, input: {code}, {_retried(codes)}"


_CAUGHT = "continue_on_error: true"


@pytest.mark.parametrize(
    ("fields", "codes", "first_message"),
    [
        (_coded("{code: RateLimited}", "[RateLimited]"), ["RateLimited"] * 3, None),
        # `api` takes every `api.…` code
        (_coded("{code: api.busy}", "[timeout, api]"), ["api.busy"] * 3, None),
        # not listed: not tried again
        (_coded("{code: RateLimited}", "[timeout, http.5xx]"), ["RateLimited"], None),
        # a prefix is a whole dotted part, not any text
        (_coded("{code: apibusy}", "[api]"), ["apibusy"], None),
        (_coded("{}", "[RateLimited]"), ["step"], None),  # no code is `step`, not listed
        (_coded("{}", "[step]"), ["step"] * 3, None),
        # not retryable: not tried again even when listed
        (_coded("{code: Invalid, retryable: false}", "[Invalid]"), ["Invalid"], None),
        # a code that is no identifier is refused without losing the step's own message;
        # recorded as `step`, which the policy lists
        (
            _coded('{code: "rate limited!"}', "[step]"),
            ["step"] * 3,
            'attempt 1 failed (its code "rate limited!" is not',
        ),
        # the step's timeout
        (
            f"type: test.slow, input: {{seconds: 5}}, timeout: 100ms, {_retried('[timeout]', 2)}",
            ["timeout"] * 2,
            None,
        ),
        # built-in codes: an unexpected exception in the handler, a template that does not
        # resolve, sys.fail
        (f"type: test.crash, {_CAUGHT}", ["internal"], None),
        (
            f'type: sys.transform, input: {{value: "{{{{ input.missing.x }}}}"}}, {_CAUGHT}',
            ["input"],
            None,
        ),
        (f"type: sys.fail, input: {{message: stop}}, {_CAUGHT}", ["step"], None),
    ],
)
async def test_each_attempts_code_and_whether_it_is_retried(
    engine: Engine, run_yaml: RunYaml, fields: str, codes: list[str], first_message: str | None
) -> None:
    """Each attempt's error and step.failed event carry the failure's code; ``retry.codes``
    tries again only the listed ones."""
    doc = await run_yaml("name: coded\nsteps:\n  - {id: s, " + fields + "}\n")
    assert doc["runtimeStatus"] == ("Completed" if _CAUGHT in fields else "Failed")
    runs = _attempts(doc, "s")
    assert [r["error"]["code"] for r in runs] == codes
    if first_message is not None:
        assert runs[0]["error"]["message"].startswith(first_message)
    failed = await _failed_events(engine, doc["id"])
    assert [f["code"] for f in failed] == codes
    assert [f["willRetry"] for f in failed] == [True] * (len(codes) - 1) + [False]


async def test_a_custom_code_is_stored_and_read_by_a_condition(
    engine: Engine, run_yaml: RunYaml
) -> None:
    """The Catch: a later sys.condition branches on the failed step's code."""
    doc = await run_yaml(
        """
        name: catch
        output: "{{ steps.slow_down.output }}"
        steps:
          - id: call
            type: test.coded
            input: {code: RateLimited}
            continue_on_error: true
          - id: which
            type: sys.condition
            input: {expression: "{{ steps.call.error.code == 'RateLimited' }}"}
            then: [slow_down]
            else: [give_up]
          - id: slow_down
            type: sys.transform
            input: {value: "{{ steps.call.error.code }}"}
          - id: give_up
            type: sys.transform
            input: {value: other}
        """
    )
    assert doc["runtimeStatus"] == "Completed"
    assert statuses(doc)["give_up"] == "Disabled"
    (call,) = _attempts(doc, "call")
    assert call["error"] == {
        "message": "attempt 1 failed",
        "stepId": "call",
        "attempt": 1,
        "code": "RateLimited",
    }
    assert doc["output"] == "RateLimited"
    (failed,) = await _failed_events(engine, doc["id"])
    assert failed["code"] == "RateLimited"


async def test_a_failed_child_is_child_failed(engine: Engine) -> None:
    child = "name: child\nsteps:\n  - {id: stop, type: sys.fail, input: {message: nope}}\n"
    await engine.push(engine.load_text(child))
    parent = (
        "name: parent\nsteps:\n"
        "  - {id: kid, type: sys.sub_workflow, continue_on_error: true, input: {workflow: child}}\n"
    )
    doc = await engine.run(engine.load_text(parent))
    assert doc["runtimeStatus"] == "Completed"
    assert _attempts(doc, "kid")[0]["error"]["code"] == "child.failed"


@pytest.mark.parametrize(
    ("code", "retry", "attempts", "reason"),
    [
        # Temporal's NonRetryableErrorTypes: everything is retried but the listed codes.
        (
            "CardDeclined",
            "except_codes: [CardDeclined]",
            1,
            "code CardDeclined is in retry.except_codes",
        ),
        ("Gateway503", "except_codes: [CardDeclined]", 3, "last of 3 attempts"),
        ("card.expired", "except_codes: [card]", 1, "code card.expired is in retry.except_codes"),
        # Both: retried when listed in codes and not in except_codes.
        ("api.busy", "codes: [api], except_codes: [api.gone]", 3, "last of 3 attempts"),
        (
            "api.gone",
            "codes: [api], except_codes: [api.gone]",
            1,
            "code api.gone is in retry.except_codes",
        ),
        ("CardDeclined", "codes: [Gateway503]", 1, "code CardDeclined is not in retry.codes"),
    ],
)
async def test_the_step_failed_event_says_why_a_step_is_not_retried(
    engine: Engine, run_yaml: RunYaml, code: str, retry: str, attempts: int, reason: str
) -> None:
    doc = await run_yaml(
        f"""
        name: coded
        steps:
          - id: call
            type: test.coded
            input: {{code: {code}}}
            retry: {{max_attempts: 3, {retry}, {_FAST}}}
        """
    )
    assert len(_attempts(doc, "call")) == attempts
    failed = await _failed_events(engine, doc["id"])
    assert [f.get("notRetried") for f in failed] == [None] * (attempts - 1) + [reason]


async def test_a_non_retryable_failure_says_so_and_a_step_without_retry_says_nothing(
    engine: Engine, run_yaml: RunYaml
) -> None:
    steps = f"""
          - id: call
            type: test.coded
            input: {{code: Invalid, retryable: false}}
            retry: {{max_attempts: 3, {_FAST}}}
            continue_on_error: true
          - id: once
            type: test.coded
            input: {{code: Invalid}}
    """
    doc = await run_yaml(f"name: coded\nsteps:{steps}")
    failed = {
        e["stepId"]: e["detail"]
        for e in await engine.events(doc["id"])
        if e["kind"] == "step.failed"
    }
    assert failed["call"]["notRetried"] == "the failure is not retryable"
    assert "notRetried" not in failed["once"]  # tried once, as it was written: nothing to explain


async def test_linear_backoff_grows_by_the_initial_delay_up_to_max_delay(
    engine: Engine, run_yaml: RunYaml
) -> None:
    doc = await run_yaml(
        """
        name: coded
        steps:
          - id: call
            type: test.coded
            input: {code: Busy}
            retry: {max_attempts: 4, backoff: linear, initial_delay: 10ms, max_delay: 25ms, jitter: false}
        """
    )
    events = await engine.events(doc["id"])
    delays = [e["detail"]["delayMs"] for e in events if e["kind"] == "step.retry_scheduled"]
    assert delays == [10, 20, 25]
