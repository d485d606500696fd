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
