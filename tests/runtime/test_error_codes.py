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


@pytest.mark.parametrize(
    ("code", "codes", "attempts"),
    [
        ("RateLimited", "[RateLimited]", 3),
        ("api.busy", "[timeout, api]", 3),  # `api` takes every `api.…` code
        ("RateLimited", "[timeout, http.5xx]", 1),  # not listed: not tried again
        ("apibusy", "[api]", 1),  # a prefix is a whole dotted part, not any text
        (None, "[RateLimited]", 1),  # no code is `step`, which is not listed
        (None, "[step]", 3),
    ],
)
async def test_only_listed_codes_are_retried(
    engine: Engine, run_yaml: RunYaml, code: str | None, codes: str, attempts: int
) -> None:
    given = "{}" if code is None else f"{{code: {code}}}"
    doc = await run_yaml(
        f"""
        name: coded
        steps:
          - id: call
            type: test.coded
            input: {given}
            retry: {{max_attempts: 3, codes: {codes}, {_FAST}}}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    runs = _attempts(doc, "call")
    assert len(runs) == attempts
    assert {r["error"]["code"] for r in runs} == {code or "step"}
    failed = await _failed_events(engine, doc["id"])
    assert [f["willRetry"] for f in failed] == [True] * (attempts - 1) + [False]
    assert {f["code"] for f in failed} == {code or "step"}


async def test_a_non_retryable_failure_is_not_retried_even_when_listed(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        f"""
        name: coded
        steps:
          - id: call
            type: test.coded
            input: {{code: Invalid, retryable: false}}
            retry: {{max_attempts: 3, codes: [Invalid], {_FAST}}}
        """
    )
    assert [r["error"]["code"] for r in _attempts(doc, "call")] == ["Invalid"]


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


async def test_a_malformed_code_keeps_the_failure(run_yaml: RunYaml) -> None:
    """A code that is no identifier is refused without losing the step's own message."""
    doc = await run_yaml(
        f"""
        name: coded
        steps:
          - id: call
            type: test.coded
            input: {{code: "rate limited!"}}
            retry: {{max_attempts: 3, codes: [step], {_FAST}}}
        """
    )
    runs = _attempts(doc, "call")
    assert len(runs) == 3  # recorded as `step`, which the policy lists
    error = runs[0]["error"]
    assert error["code"] == "step"
    assert error["message"].startswith('attempt 1 failed (its code "rate limited!" is not')


async def test_the_steps_timeout_is_code_timeout(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        f"""
        name: slow
        steps:
          - id: wait
            type: test.slow
            input: {{seconds: 5}}
            timeout: 100ms
            retry: {{max_attempts: 2, codes: [timeout], {_FAST}}}
        """
    )
    runs = _attempts(doc, "wait")
    assert [r["error"]["code"] for r in runs] == ["timeout", "timeout"]


@pytest.mark.parametrize(
    ("step", "code"),
    [
        ("{type: test.crash}", "internal"),  # an unexpected exception in the handler
        ('{type: sys.transform, input: {value: "{{ input.missing.x }}"}}', "input"),
        ("{type: sys.fail, input: {message: stop}}", "step"),
    ],
)
async def test_built_in_codes(run_yaml: RunYaml, step: str, code: str) -> None:
    doc = await run_yaml(
        f"""
        name: codes
        steps:
          - {{id: s, continue_on_error: true, {step[1:-1]}}}
        """
    )
    assert _attempts(doc, "s")[-1]["error"]["code"] == code


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
