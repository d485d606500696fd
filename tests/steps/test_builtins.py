"""The built-in step types' own rules, as custom steps meet them too (``ctx.variables``)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, StepError, StepRegistry, step_type
from flowledger.steps.builtins import apply_variable_op


class In(BaseModel):
    op: str


@step_type("acme.varop")
async def varop(data: In, ctx: StepContext) -> dict[str, object]:
    new = ctx.variables.apply("cfg", data.op, {"a": 1})  # type: ignore[arg-type]
    return {"new": new}


@pytest.mark.parametrize("op", ["sett", "frobnicate", "Merge"])
def test_an_unknown_variable_op_is_refused_naming_it_and_the_ops(op: str) -> None:
    """Every op that was not set, increment or append was taken as merge: "sett"
    merged, and "frobnicate" said it could not merge (tour 23 F3)."""
    with pytest.raises(StepError) as refused:
        apply_variable_op({"b": 2}, op, {"a": 1}, "cfg")
    assert refused.value.message == (
        f"unknown op {op!r} for variable 'cfg': use one of set, increment, append, merge"
    )
    assert not refused.value.retryable


async def test_a_custom_step_s_unknown_op_fails_it_at_the_call_and_changes_nothing() -> None:
    registry = StepRegistry.with_builtins()
    registry.register(varop)
    text = """
name: ops
variables: {cfg: {b: 2}}
steps:
  - {id: s, type: acme.varop, input: {op: sett}}
output: "{{ variables.cfg }}"
"""
    async with Engine("sqlite://", registry=registry) as engine:
        doc = await engine.run(engine.load_text(text))
        merged = await engine.run(engine.load_text(text.replace("op: sett", "op: merge")))
    assert doc["runtimeStatus"] == "Failed"
    assert doc["error"]["message"] == (
        "unknown op 'sett' for variable 'cfg': use one of set, increment, append, merge"
    )
    assert doc["variables"] == {"cfg": {"b": 2}}
    assert merged["output"] == {"b": 2, "a": 1}


async def test_a_merge_of_a_templated_value_that_is_not_an_object_fails_its_step_at_run() -> None:
    """Validate lets a templated value pass; the run holds it to the rule a literal meets
    there, and the variable is unchanged."""
    text = """
name: merge
variables: {o: {a: 1}}
steps:
  - {id: s, type: sys.set_variable, input: {name: o, op: merge, value: "{{ input.v }}"}}
"""
    async with Engine("sqlite://") as engine:
        workflow = engine.load_text(text)
        refused = await engine.run(workflow, {"v": [1]})
        merged = await engine.run(workflow, {"v": {"b": 2}})
    assert refused["runtimeStatus"] == "Failed"
    assert refused["error"]["message"] == "input: merge takes an object as its value, not a list"
    assert refused["variables"] == {"o": {"a": 1}}
    assert merged["variables"] == {"o": {"a": 1, "b": 2}}
