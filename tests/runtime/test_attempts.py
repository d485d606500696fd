"""Retries with backoff, timeouts, due dates, crashes inside handlers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, Suspend, step_type
from flowledger.codec import loads
from tests.conftest import RunYaml
from tests.raw_sql import run_sql
from tests.runtime.steps_for_tests import Recorder


async def test_retries_until_success_with_one_row_per_attempt(
    run_yaml: RunYaml, recorder: Recorder, engine: Engine
) -> None:
    doc = await run_yaml(
        """
        name: retry
        steps:
          - id: f
            type: test.flaky
            input: {fail_times: 2, name: f}
            retry: {max_attempts: 3, backoff: exponential, initial_delay: 10ms, max_delay: 50ms}
        output: "{{ steps.f.output.attempt }}"
        """
    )
    assert doc["runtimeStatus"] == "Completed"
    assert doc["output"] == 3
    attempts = sorted((s["attempt"], s["status"]) for s in doc["steps"].values())
    assert attempts == [(1, "Failed"), (2, "Failed"), (3, "Completed")]
    # One idempotency key for the step execution, whatever the attempt.
    assert len(set(recorder.keys["f"])) == 1 and recorder.calls["f"] == 3
    kinds = [e["kind"] for e in await engine.events(doc["id"])]
    assert kinds.count("step.retry_scheduled") == 2


async def test_a_failure_s_retry_after_is_waited_as_a_timer(
    run_yaml: RunYaml, engine: Engine
) -> None:
    """A custom step's StepError(retry_after=...) lengthens the policy's 10 ms delay."""
    doc = await run_yaml(
        """
        name: retry_after
        steps:
          - id: f
            type: test.flaky
            input: {fail_times: 1, retry_after: 0.4}
            retry: {max_attempts: 2, backoff: fixed, initial_delay: 10ms, jitter: false}
        """
    )
    assert doc["runtimeStatus"] == "Completed"
    events = await engine.events(doc["id"])
    scheduled = next(e for e in events if e["kind"] == "step.retry_scheduled")
    assert scheduled["detail"]["delayMs"] == 400
    second = next(s for s in doc["steps"].values() if s["attempt"] == 2)
    assert second["startedAt"] >= scheduled["detail"]["wakeAt"]


async def test_a_retry_after_on_a_step_without_retry_says_it_had_one_attempt(
    run_yaml: RunYaml, engine: Engine
) -> None:
    """The hint waits within the step's retry policy: without ``retry:`` it was dropped
    without a word, and the step failed after one attempt (tour 23 F15)."""
    doc = await run_yaml(
        """
        name: no_retry
        steps:
          - {id: f, type: test.flaky, input: {fail_times: 1, retry_after: 30}}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    [step] = doc["steps"].values()
    assert step["attempt"] == 1
    assert step["error"]["message"] == (
        "attempt 1 failed on purpose (it asked to be tried again after 30s, but step 'f' "
        "has no retry policy: give it retry: to try it again)"
    )
    failed = [e for e in await engine.events(doc["id"]) if e["kind"] == "step.failed"]
    assert failed[0]["detail"]["error"] == step["error"]["message"]


async def test_gives_up_after_max_attempts(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: retry_fail
        steps:
          - id: f
            type: test.flaky
            input: {fail_times: 5}
            retry: {max_attempts: 2, backoff: fixed, initial_delay: 5ms, jitter: false}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["message"] == "attempt 2 failed on purpose"
    assert doc["error"]["attempt"] == 2


async def test_timeout_fails_the_attempt_and_is_retried(
    run_yaml: RunYaml, recorder: Recorder
) -> None:
    doc = await run_yaml(
        """
        name: timeouts
        steps:
          - id: s
            type: test.slow
            input: {seconds: 5, name: s}
            timeout: 50ms
            retry: {max_attempts: 2, initial_delay: 5ms}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    assert "timed out after 0.05s" in doc["error"]["message"]
    assert recorder.calls["s"] == 2


async def test_due_bounds_every_attempt(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: due
        steps:
          - id: s
            type: test.slow
            input: {seconds: 5}
            due: 100ms
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    step = next(iter(doc["steps"].values()))
    assert step["dueAt"] is not None
    assert doc["error"]["message"] == "did not finish before it was due"


async def test_an_unexpected_exception_is_a_clear_step_error(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: crashy
        steps:
          - {id: c, type: test.crash}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["message"] == "RuntimeError: boom"
    assert doc["error"]["stepId"] == "c"


async def test_a_runtime_reference_error_names_the_path(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: missing_field
        steps:
          - {id: e, type: test.echo, input: {value: {a: 1}}}
          - {id: t, type: sys.transform, input: {value: "{{ steps.e.output.value.b }}"}}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    message = doc["error"]["message"]
    assert message.startswith("input: ") and "steps.e.output.value" in message and "'b'" in message


async def test_invalid_rendered_input_fails_with_the_field(run_yaml: RunYaml) -> None:
    doc = await run_yaml(
        """
        name: bad_items
        steps:
          - {id: l, type: sys.loop, input: {items: "{{ input.n }}"}, steps: [{id: x, type: sys.no_action}]}
        """,
        {"n": 5},
    )
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["message"] == "input: items: must be a list, not 5"


async def test_every_step_execution_has_its_own_idempotency_key(
    run_yaml: RunYaml, engine: Engine
) -> None:
    """Steps, loop iterations and executions each get a key of their own (32 hex digits);
    the attempts of one step execution share theirs."""
    text = """
        name: keys
        steps:
          - {id: a, type: test.echo, input: {value: 1}}
          - id: each
            type: sys.loop
            after: [a]
            input: {items: [1, 2, 3]}
            steps:
              - {id: body, type: test.echo, input: {value: "{{ loop.each.item }}"}}
          - id: f
            type: test.flaky
            after: [each]
            input: {fail_times: 1, name: f}
            retry: {max_attempts: 2, initial_delay: 10ms}
        """
    keys: list[str] = []
    for _ in range(2):
        doc = await run_yaml(text)
        assert doc["runtimeStatus"] == "Completed"
        steps = await engine.store.get_step_executions(doc["id"])
        flaky = {r["idempotency_key"] for r in steps if r["step_id"] == "f"}
        assert len(flaky) == 1 and len([r for r in steps if r["step_id"] == "f"]) == 2
        keys += [r["idempotency_key"] for r in steps if r["step_id"] != "f"] + [*flaky]
    assert len(keys) == len(set(keys)) == 2 * (1 + 1 + 3 + 1)
    assert all(len(k) == 32 and int(k, 16) >= 0 for k in keys)


class Upstream(BaseModel):
    missing: bool = False


async def test_a_step_s_own_exception_keeps_its_message_and_its_traceback(
    engine: Engine,
) -> None:
    """A TimeoutError the step's code raised (an inner wait_for) was reported as the
    step's own timeout, "timed out after 0s", its message lost; and the traceback of an
    unexpected exception was kept nowhere. Now the message stays, and the traceback is in
    the attempt's step logs (redacted, as every step log line is)."""

    @step_type("test.upstream")
    async def upstream(data: Upstream, ctx: StepContext) -> dict[str, Any]:
        if data.missing:
            return {"x": {}["missing_key"]}
        raise TimeoutError("upstream payments API did not answer in 2s")

    engine.registry.register(upstream)
    for timeout in ("", "timeout: 30s"):
        doc = await engine.run(
            engine.load_text(
                f"name: up\nsteps:\n  - id: s\n    type: test.upstream\n    {timeout}\n"
            )
        )
        assert doc["runtimeStatus"] == "Failed"
        said = doc["error"]["message"]
        assert "TimeoutError: upstream payments API did not answer in 2s" in said, said
    doc = await engine.run(
        engine.load_text("name: key\nsteps: [{id: k, type: test.upstream, input: {missing: 1}}]\n")
    )
    assert doc["error"]["message"].endswith("KeyError: 'missing_key'")
    lines = await engine.store.get_step_logs(doc["id"])
    [line] = [json.loads(row["message"]) for row in lines]
    assert line.startswith("step k raised KeyError('missing_key')\nTraceback (most rec"), line
    assert 'return {"x": {}["missing_key"]}' in line and line.endswith("KeyError: 'missing_key'")


async def test_the_process_log_says_one_line_where_the_step_logs_keep_the_traceback(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Tour 25: `run` printed ~40 lines of internal frames on its console (the process's
    log) for every failing attempt, while `executions logs` had the traceback already."""

    @step_type("test.keyerror")
    async def keyerror(data: Upstream, ctx: StepContext) -> dict[str, Any]:
        return {"x": {}["x"]}

    engine.registry.register(keyerror)
    caplog.set_level(logging.WARNING, logger="flowledger")
    doc = await engine.run(engine.load_text("name: kx\nsteps: [{id: b, type: test.keyerror}]\n"))
    said = [r for r in caplog.records if "raised" in r.getMessage()]
    assert len(said) == 1 and said[0].exc_info is None, said
    assert said[0].getMessage() == (
        f"step b raised KeyError: 'x' (traceback: flowledger executions logs {doc['id']} --step b)"
    )
    [kept] = [json.loads(row["message"]) for row in await engine.store.get_step_logs(doc["id"])]
    assert kept.startswith("step b raised KeyError('x')\nTraceback (most recent call last)")


async def test_a_cancelled_error_out_of_the_step_s_own_code_fails_the_attempt(
    engine: Engine,
) -> None:
    """A CancelledError that escaped a handler (an inner task a library cancelled) left
    the step InProgress, unretried, and the execution failed as "nothing left to run"."""
    calls: list[int] = []

    @step_type("test.inner_cancel")
    async def inner_cancel(data: Upstream, ctx: StepContext) -> dict[str, Any]:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            inner = asyncio.get_running_loop().create_future()
            inner.cancel()
            await inner  # raises CancelledError into the handler, which lets it out
        return {"attempt": ctx.attempt}

    engine.registry.register(inner_cancel)
    text = (
        "name: ic\nsteps:\n  - id: s\n    type: test.inner_cancel\n"
        "    retry: {max_attempts: 2, initial_delay: 5ms}\n"
    )
    doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert calls == [1, 2]
    first = next(s for s in doc["steps"].values() if s["attempt"] == 1)
    assert "raised CancelledError" in first["error"]["message"]


async def test_a_huge_exception_message_leaves_the_traceback_in_the_logs(engine: Engine) -> None:
    """An exception quoting a whole body (an HTTP client's) filled the step log's line
    with its repr, so its frames were cut; and the document held all 200 KB of it."""

    @step_type("test.huge_error")
    async def huge_error(data: Upstream, ctx: StepContext) -> dict[str, Any]:
        raise ValueError("line one\nline two " + "x" * 200_000)

    engine.registry.register(huge_error)
    doc = await engine.run(engine.load_text("name: h\nsteps: [{id: h, type: test.huge_error}]\n"))
    said = doc["error"]["message"]
    assert said.startswith("ValueError: line one") and "more characters cut)" in said
    assert len(said) < 2_100
    [row] = await engine.store.get_step_logs(doc["id"])
    line = json.loads(row["message"])
    assert 'raise ValueError("line one' in line  # the frame that raised it is kept


class Parks(BaseModel):
    var: str = "c"
    fail_first_wake: bool = False
    wake_ms: int = 30


async def _woken(data: Parks, ctx: StepContext, state: Mapping[str, Any]) -> dict[str, Any]:
    assert dict(state) == {"phase": 1}  # the engine's own key is not the handler's
    assert ctx.variables is not None
    seen = ctx.variables.get(data.var)  # the attempt reads the change it parked with
    if data.fail_first_wake and ctx.attempt == 1:
        raise StepError("the first wake fails")
    return {"seen": seen}


@step_type("test.counts_then_parks", resume=_woken)
async def counts_then_parks(data: Parks, ctx: StepContext) -> Suspend:
    assert ctx.variables is not None
    ctx.variables.apply(data.var, "increment", 1)
    wake = datetime.now(UTC) + timedelta(milliseconds=data.wake_ms)
    return Suspend(until=wake, state={"phase": 1})


def _parks(name: str, step_input: str) -> str:
    return (
        f"name: {name}\nvariables: {{c: 0}}\noutput: '{{{{ variables.c }}}}'\nsteps:\n"
        f"  - {{id: s, type: test.counts_then_parks, input: {step_input}, "
        "retry: {max_attempts: 3, initial_delay: 10ms, jitter: false}}\n"
    )


def _runs(doc: dict[str, Any]) -> list[tuple[int, str, Any]]:
    return sorted((s["attempt"], s["status"], s["outputData"]) for s in doc["steps"].values())


async def test_a_parked_attempt_that_fails_after_waking_changes_nothing(engine: Engine) -> None:
    """Changes made through ctx.variables before a Suspend were applied when the step
    parked, and kept when the woken attempt failed: its retry counted again (c = 2 for
    one attempt that completed)."""
    engine.registry.register(counts_then_parks)
    doc = await engine.run(engine.load_text(_parks("parks", "{fail_first_wake: true}")))
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    assert doc["variables"] == {"c": 1} and doc["output"] == 1
    assert _runs(doc) == [(1, "Failed", None), (2, "Completed", {"seen": 1})]


async def test_a_parked_attempt_s_changes_wait_with_it_across_a_restart(db_url: str) -> None:
    """While the step is parked its changes are pending, stored with its state in the
    commit that parks it: a restart keeps them, and they count once, when it completes.
    A step an earlier build parked (its changes applied then) does not count them again."""
    registry = StepRegistry.with_builtins()
    registry.register(counts_then_parks)
    text = _parks("parked", "{wake_ms: 1500}")
    async with Engine(db_url, registry=registry, owner="parking") as engine:
        fresh, earlier = [await engine.start(engine.load_text(text)) for _ in range(2)]
        for execution_id in (fresh, earlier):
            task = asyncio.create_task(engine.drive(execution_id))
            await _until_event(engine, execution_id, "step.suspended")
            task.cancel()  # what a crash looks like to the database: no more writes
            with contextlib.suppress(asyncio.CancelledError):
                await task
            row = await engine.store.get_execution(execution_id)
            assert row is not None and loads(row["variables"]) == {"c": 0}
            [step] = await engine.store.get_step_executions(execution_id)
            pending = {"pending": [["c", "increment", 1]]}
            engine_part = {"wait": {"outside": 0}, "variables": pending}
            assert loads(step["state"]) == {"phase": 1, "__flowledger__": engine_part}
    # As an earlier build left its parked step: the change applied, kept as a bare list.
    applied = json.dumps({"phase": 1, "variables": [["c", "increment", 1]]})
    run_sql(
        db_url,
        "UPDATE step_executions SET state = :s WHERE execution_id = :e",
        s=applied,
        e=earlier,
    )
    run_sql(db_url, "UPDATE executions SET variables = :v WHERE id = :e", v='{"c":1}', e=earlier)
    async with Engine(db_url, registry=registry, owner="parking") as engine:
        for execution_id in (fresh, earlier):
            doc = await engine.drive(execution_id)
            assert doc["runtimeStatus"] == "Completed", doc["error"]
            assert doc["variables"] == {"c": 1}, execution_id == earlier
            assert _runs(doc) == [(1, "Completed", {"seen": 1})]
            [step] = await engine.store.get_step_executions(execution_id)
            # What a rerun that reuses the step replays (the earlier build's row is kept
            # in the new shape from its next write: runtime.reserved).
            made = loads(step["state"])["__flowledger__"]["variables"]
            assert made == [["c", "increment", 1]]


async def _until_event(engine: Engine, execution_id: str, kind: str) -> None:
    for _ in range(1000):
        if any(e["kind"] == kind for e in await engine.events(execution_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} event was ever committed")


class Changes(BaseModel):
    ops: list[tuple[str, str, Any]]
    ms: int = 0


@step_type("test.changes_then_waits")
async def changes_then_waits(data: Changes, ctx: StepContext) -> dict[str, Any]:
    assert ctx.variables is not None
    for name, op, value in data.ops:
        ctx.variables.apply(name, op, value)
    await asyncio.sleep(data.ms / 1000)
    return {"done": True}


async def test_changes_that_no_longer_fit_when_the_step_ends_fail_the_step(
    engine: Engine,
) -> None:
    """A step's changes are applied to the variables as they are when it completes. One
    that no longer fit (a concurrent step set the variable to text meanwhile, or their
    increments overflowed together) raised out of the runner: `run` stopped with the
    execution InProgress. And the changes before it in the step were applied."""
    engine.registry.register(changes_then_waits)
    text = """
        name: race
        variables: {c: 0, n: 0, f: 0}
        steps:
          - id: a
            type: test.changes_then_waits
            input: {ms: 800, ops: [[n, increment, 1], [c, increment, 1]]}
          - {id: d, type: sys.delay, after: [], input: {duration: 50ms}}
          - {id: s, type: sys.set_variable, after: [d], input: {name: c, value: text}}
          - id: big1
            type: test.changes_then_waits
            after: []
            input: {ms: 100, ops: [[f, increment, 1.0e308]]}
          - id: big2
            type: test.changes_then_waits
            after: []
            continue_on_error: true
            input: {ms: 200, ops: [[f, increment, 1.0e308]]}
    """
    doc = await engine.run(engine.load_text(textwrap.dedent(text)))
    assert doc["runtimeStatus"] == "Failed"
    steps = {s["stepId"]: s for s in doc["steps"].values()}
    assert steps["a"]["status"] == "Failed" and steps["a"]["outputData"] is None
    said = "cannot increment variable 'c': it holds str and the value is int; both must be numbers"
    assert doc["error"]["message"] == said
    assert steps["big2"]["error"]["message"] == (
        "cannot increment variable 'f': the result is too large for a number JSON can hold"
    )
    assert doc["variables"] == {"c": "text", "n": 0, "f": 1e308}
