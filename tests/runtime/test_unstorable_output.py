"""A handler's output that JSON cannot hold (it contains itself) fails its step with a
clear error; it does not crash the run or the engine."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, Suspend, step_type


class _Input(BaseModel):
    depth: int = 0


@step_type("test.self_containing")
async def self_containing(data: _Input, ctx: StepContext) -> dict[str, Any]:
    output: dict[str, Any] = {"name": "loop"}
    output["self"] = output
    return output


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"in": value}
    return value


@step_type("test.too_deep")
async def too_deep(data: _Input, ctx: StepContext) -> dict[str, Any]:
    return _nested(data.depth)


WORKFLOW = """
name: unstorable
steps:
  - {id: a, type: %s, input: {depth: 100000}}
  - {id: b, type: sys.transform, input: {value: 1}}
"""


async def _ran(db_url: str, step: str) -> dict[str, Any]:
    registry = StepRegistry.with_builtins()
    registry.register(self_containing)
    registry.register(too_deep)
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(WORKFLOW % step))
        # The engine goes on working.
        again = await engine.run(
            engine.load_text(
                "name: ok\nsteps:\n  - {id: x, type: sys.transform, input: {value: 2}}\n"
            )
        )
        assert again["runtimeStatus"] == "Completed"
    return doc


async def test_an_output_that_contains_itself_fails_its_step(db_url: str) -> None:
    doc = await _ran(db_url, "test.self_containing")
    assert doc["runtimeStatus"] == "Failed"
    (step,) = [s for s in doc["steps"].values() if s["stepId"] == "a"]
    assert step["status"] == "Failed"
    assert "its output cannot be stored: output contains itself" in step["error"]["message"]
    assert not any(s["stepId"] == "b" for s in doc["steps"].values())


async def test_an_output_nested_past_the_recursion_limit_fails_its_step(db_url: str) -> None:
    doc = await _ran(db_url, "test.too_deep")
    (step,) = [s for s in doc["steps"].values() if s["stepId"] == "a"]
    assert step["status"] == "Failed"
    assert "nested too deeply" in step["error"]["message"]


class _Out(BaseModel):
    x: int
    nested: dict[str, Any] = {}


class _Mode(BaseModel):
    mode: str


CALLS: dict[str, int] = {}


@step_type("test.typed_unstorable")
async def typed_unstorable(data: _Mode, ctx: StepContext) -> _Out:
    CALLS[data.mode] = CALLS.get(data.mode, 0) + 1
    if data.mode == "bytes":
        return _Out(x=1, nested={"d": b"\xff\x00"})
    if data.mode == "cycle":
        cycle: dict[str, Any] = {}
        cycle["d"] = cycle
        return _Out(x=1, nested=cycle)
    return _Out(x=1, nested={"d": "a\ud800b"})  # a lone surrogate: no UTF-8 for it


async def test_a_typed_output_json_cannot_hold_fails_its_step_once(db_url: str) -> None:
    """Through an output model, such outputs raised where the runner did not expect it:
    the run stopped (exit 1, "a flowledger bug"), the execution stayed InProgress, and
    a worker ran the handler again and again."""
    registry = StepRegistry.with_builtins()
    registry.register(typed_unstorable)
    CALLS.clear()
    async with Engine(db_url, registry=registry) as engine:
        for mode in ("bytes", "cycle", "surrogate"):
            text = (
                f"name: typed-{mode}\nsteps:\n"
                f"  - {{id: a, type: test.typed_unstorable, continue_on_error: true, "
                f"retry: {{max_attempts: 3}}, input: {{mode: {mode}}}}}\n"
                "  - {id: b, type: sys.transform, after: [a], input: {value: 2}}\n"
            )
            doc = await engine.run(engine.load_text(text))
            assert doc["runtimeStatus"] == "Completed", (mode, doc["error"])
            steps = {s["stepId"]: s for s in doc["steps"].values()}
            assert steps["a"]["status"] == "Failed"
            assert "its output cannot be stored" in steps["a"]["error"]["message"], mode
            assert steps["b"]["status"] == "Completed"
            assert CALLS[mode] == 1, mode  # not retried: the same output would come back


@step_type("test.free_output")
async def free_output(data: _Mode, ctx: StepContext) -> dict[str, Any]:
    return {"free": 3} if data.mode == "int" else {"free": "three"}


async def test_a_declared_output_schema_is_checked_when_the_step_completes(db_url: str) -> None:
    """Validation checked references against the step's output_schema, but the output
    itself was never checked: a wrong one passed, and a later step failed on it."""
    registry = StepRegistry.with_builtins()
    registry.register(free_output)
    schema = "{type: object, properties: {free: {type: string}}, required: [free]}"
    async with Engine(db_url, registry=registry) as engine:
        for mode, status in (("int", "Failed"), ("text", "Completed")):
            text = (
                f"name: declared-{mode}\nsteps:\n"
                f"  - {{id: a, type: test.free_output, input: {{mode: {mode}}}, "
                f"output_schema: {schema}}}\n"
                "  - {id: b, type: sys.transform, input: {value: '{{ steps.a.output.free }}'}}\n"
            )
            doc = await engine.run(engine.load_text(text))
            assert doc["runtimeStatus"] == status, (mode, doc["error"])
            if status == "Failed":
                message = doc["error"]["message"]
                assert "output does not match the step's output_schema" in message
                assert "output.free: 3 is not of type 'string'" in message
                assert doc["error"]["stepId"] == "a"


@step_type("test.naive_suspend")
async def naive_suspend(data: _Mode, ctx: StepContext) -> Any:
    from datetime import datetime

    from flowledger.steps.base import Suspend

    return Suspend(until=datetime(2030, 1, 1))  # no zone


async def test_text_no_storage_keeps_and_a_naive_wake_time_fail_their_step(db_url: str) -> None:
    """A lone surrogate rendered by a template failed the commit (the execution stayed
    NotStarted, retried for ever); a naive Suspend time stopped the runner."""
    registry = StepRegistry.with_builtins()
    registry.register(naive_suspend)
    async with Engine(db_url, registry=registry) as engine:
        surrogate = 'name: sg\nsteps:\n  - {id: a, type: sys.transform, input: {value: "{{ \\"\\\\ud800\\" }}"}}\n'
        doc = await engine.run(engine.load_text(surrogate))
        assert doc["runtimeStatus"] == "Failed"
        assert "half of a UTF-16 pair, which cannot be stored" in doc["error"]["message"]
        naive = "name: nv\nsteps:\n  - {id: a, type: test.naive_suspend, input: {mode: x}}\n"
        doc = await engine.run(engine.load_text(naive))
        assert doc["runtimeStatus"] == "Failed"
        assert "needs a time with a zone" in doc["error"]["message"]


@step_type("test.counts_then_fails")
async def counts_then_fails(data: _Mode, ctx: StepContext) -> dict[str, Any]:
    assert ctx.variables is not None
    seen = ctx.variables.apply("n", "increment", 1)
    assert ctx.variables.get("n") == seen  # the attempt reads its own change at once
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails after counting")
    return {"seen": seen}


async def test_a_failed_attempt_s_variable_changes_do_not_count(db_url: str) -> None:
    """Changes made through ctx.variables were applied at once: a step that counted and
    then failed twice left n = 3 for one success."""
    registry = StepRegistry.with_builtins()
    registry.register(counts_then_fails)
    text = (
        "name: counting\nvariables: {n: 0}\noutput: '{{ variables.n }}'\nsteps:\n"
        "  - {id: a, type: test.counts_then_fails, input: {mode: x}, "
        "retry: {max_attempts: 3, initial_delay: 10ms, jitter: false}}\n"
    )
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(
            engine.load_text(text + "  - {id: b, type: sys.no_action, after: [a]}\n")
        )
        assert doc["runtimeStatus"] == "CompletedWithNoActionTaken", doc["error"]
        assert doc["variables"] == {"n": 1} and doc["output"] == 1
        [done] = [
            s for s in doc["steps"].values() if s["stepId"] == "a" and s["status"] == "Completed"
        ]
        assert done["outputData"] == {"seen": 1}
        # A rerun that reuses the step keeps what it changed (it came back as 0).
        again = await engine.settle(await engine.rerun(doc["id"], "b"))
    assert again["variables"] == {"n": 1} and again["output"] == 1


@step_type("test.python_values")
async def python_values(data: _Mode, ctx: StepContext) -> dict[str, Any]:
    CALLS[data.mode] = CALLS.get(data.mode, 0) + 1
    if data.mode == "convertible":
        when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
        return {"when": when, "tags": ("a", "b"), "day": date(2026, 12, 1), "id": UUID(int=1)}
    if data.mode == "nan":
        return {"scores": [1.5, math.nan]}
    return {"handle": [1, object()]}


async def test_a_dict_output_is_converted_as_a_model_would_be_or_refused(db_url: str) -> None:
    """A dict holding a datetime was stored as its str() (no ISO ``T``), NaN as null
    and an object as its repr, without a word."""
    registry = StepRegistry.with_builtins()
    registry.register(python_values)
    CALLS.clear()
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(_one_step("convertible")))
        assert doc["runtimeStatus"] == "Completed", doc["error"]
        [step] = doc["steps"].values()
        assert step["outputData"] == {
            "when": "2026-12-01T09:30:00Z",
            "tags": ["a", "b"],
            "day": "2026-12-01",
            "id": "00000000-0000-0000-0000-000000000001",
        }
        for mode, message in (
            ("nan", "output.scores[1] is nan, which JSON cannot hold"),
            ("object", "output.handle[1] holds a value of type object, which has no JSON form"),
        ):
            doc = await engine.run(engine.load_text(_one_step(mode)))
            assert doc["runtimeStatus"] == "Failed", mode
            [step] = doc["steps"].values()
            assert step["error"]["message"] == f"its output cannot be stored: {message}"
            assert CALLS[mode] == 1, mode  # not retried: the same output would come back


def _one_step(mode: str) -> str:
    return (
        f"name: values-{mode}\nsteps:\n"
        f"  - {{id: a, type: test.python_values, retry: {{max_attempts: 3}}, "
        f"input: {{mode: '{mode}'}}}}\n"
    )


class _Reply(BaseModel):
    count: int


@step_type("test.parses_a_reply")
async def parses_a_reply(data: _Mode, ctx: StepContext) -> dict[str, Any]:
    return _Reply.model_validate({"count": "many"}).model_dump()


async def test_a_validation_error_inside_a_handler_is_told_in_one_line(db_url: str) -> None:
    """It was stored as pydantic's several lines, with a link to errors.pydantic.dev."""
    registry = StepRegistry.with_builtins()
    registry.register(parses_a_reply)
    text = (
        "name: parses\nsteps:\n"
        "  - {id: a, type: test.parses_a_reply, retry: {max_attempts: 1}, input: {mode: x}}\n"
    )
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(text))
    [step] = doc["steps"].values()
    assert step["error"]["message"] == (
        'ValidationError in _Reply: count: must be a whole number, not "many"'
    )


@step_type("test.counts_around_a_park")
async def counts_before_parking(data: _Mode, ctx: StepContext) -> Suspend:
    assert ctx.variables is not None
    ctx.variables.apply("n", "increment", 1)
    return Suspend(until=datetime.now(UTC) + timedelta(milliseconds=20), state={"phase": 1})


async def _counts_after_waking(data: Any, ctx: StepContext, state: Any) -> dict[str, Any]:
    assert dict(state) == {"phase": 1}  # the engine's own key is not the handler's
    assert ctx.variables is not None
    ctx.variables.apply("n", "increment", 10)
    return {"woke": True}


COUNTS_AROUND_A_PARK = dataclasses.replace(counts_before_parking, resume=_counts_after_waking)


async def test_a_rerun_replays_the_changes_a_step_made_before_it_suspended(db_url: str) -> None:
    """Only the changes after the last wake were kept with the step: a rerun that
    reused it lost the ones made before it suspended (n came back 10, not 11)."""
    registry = StepRegistry.with_builtins()
    registry.register(COUNTS_AROUND_A_PARK)
    text = (
        "name: parking\nvariables: {n: 0}\noutput: '{{ variables.n }}'\nsteps:\n"
        "  - {id: a, type: test.counts_around_a_park, input: {mode: x}}\n"
        "  - {id: b, type: sys.no_action, after: [a]}\n"
    )
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(text))
        assert doc["output"] == 11, doc["error"]
        again = await engine.settle(await engine.rerun(doc["id"], "b"))
    assert again["variables"] == {"n": 11} and again["output"] == 11


@step_type("test.stores_odd_values")
async def stores_odd_values(data: _Mode, ctx: StepContext) -> Any:
    if data.mode == "surrogate":
        return {"ok": 1, "text": ["fine", "a\ud800b"]}
    if data.mode == "key":
        return {"ok": {"k\udc00": 1}}
    if data.mode == "typed":  # an Any field: JSON mode wrote its NaN as null
        return _Out(x=1, nested={"score": math.nan})
    if data.mode == "state":
        return Suspend(until=datetime.now(UTC), state={"scores": [1.0, math.inf]})
    raise StepError("it went wrong", retryable=False, details={"score": math.nan, "n": 1})


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("surrogate", "its output cannot be stored: output.text[1] holds a lone surrogate (\\ud800), which UTF-8 cannot store"),
        ("key", "its output cannot be stored: output.ok.k\\udc00 holds a lone surrogate (\\udc00), which UTF-8 cannot store"),
        ("typed", "its output cannot be stored: output.nested.score is nan, which JSON cannot hold"),
        ("state", "its Suspend state cannot be stored: state.scores[1] is inf, which JSON cannot hold"),
        ("details", "it went wrong (its details cannot be stored: details.score is nan, which JSON cannot hold)"),
    ],
)  # fmt: skip
async def test_what_json_cannot_hold_fails_its_step_saying_where(
    db_url: str, mode: str, message: str
) -> None:
    """A lone surrogate in an output failed with the encoder's words (UnicodeEncodeError,
    position 25), not the field; NaN in a model's ``Any`` field, in a Suspend's state and
    in a StepError's details was stored as null, the engine holding NaN meanwhile."""
    registry = StepRegistry.with_builtins()
    registry.register(stores_odd_values)
    text = (
        f"name: odd-{mode}\nsteps:\n  - {{id: a, type: test.stores_odd_values, "
        f"retry: {{max_attempts: 3}}, input: {{mode: {mode}}}}}\n"
    )
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    [step] = doc["steps"].values()  # not retried: the same value would come back
    code = {"state": "internal", "details": "step"}.get(mode, "output")
    assert step["error"] == {"message": message, "stepId": "a", "attempt": 1, "code": code}


SHARED: dict[str, Any] = {}


@step_type("test.shares_its_output")
async def shares_its_output(data: _Mode, ctx: StepContext) -> dict[str, Any]:
    if data.mode == "give":
        SHARED.clear()
        SHARED["x"] = 1.5
        return SHARED
    SHARED["x"] = math.nan  # the dict the earlier step returned, which the engine holds
    return {}


async def test_a_workflow_output_json_cannot_hold_fails_the_execution(db_url: str) -> None:
    """A workflow output holding NaN was stored as null and the execution completed;
    a step's output holding it fails the step."""
    registry = StepRegistry.with_builtins()
    registry.register(shares_its_output)
    text = (
        "name: shared\noutput: {kept: '{{ steps.a.output }}'}\nsteps:\n"
        "  - {id: a, type: test.shares_its_output, input: {mode: give}}\n"
        "  - {id: b, type: test.shares_its_output, input: {mode: change}}\n"
    )
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(text))
    assert doc["runtimeStatus"] == "Failed"
    assert doc["output"] is None
    assert doc["error"] == {
        "message": "the workflow's output cannot be stored: output.kept.x is nan, "
        "which JSON cannot hold"
    }
