"""The StepContext a handler is given: every field, as the engine's records hold it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from flowledger import Engine, StepContext, StepRegistry, step_type


class Seen(BaseModel):
    value: int


async def test_a_handler_sees_its_step_execution_in_every_field(db_url: str) -> None:
    seen: dict[str, Any] = {}

    @step_type("test.look")
    async def look(data: Seen, ctx: StepContext) -> dict[str, Any]:
        seen.update(
            execution_id=ctx.execution_id,
            step_id=ctx.step_id,
            step_execution_id=ctx.step_execution_id,
            attempt=ctx.attempt,
            idempotency_key=ctx.idempotency_key,
            loop=ctx.loop,
            started_at=ctx.started_at,
            definition_input=ctx.definition_input,
            depth=ctx.depth,
            heartbeat_details=ctx.heartbeat_details,
            variable=ctx.variables.get("total"),
            now=ctx.now(),
            http=ctx.http,
            logger=ctx.logger,
            entities=ctx.entities,
            artifacts=ctx.artifacts,
        )
        return {"value": data.value}

    registry = StepRegistry.with_builtins()
    registry.register(look)
    source = """
name: looked
variables: {total: 7}
steps:
  - {id: first, type: test.look, input: {value: 1}}
  - {id: second, type: test.look, input: {value: "{{ steps.first.output.value }}"}}
"""
    async with Engine(db_url, registry=registry) as engine:
        doc = await engine.run(engine.load_text(source))
        assert doc["runtimeStatus"] == "Completed"
        rows = {r["step_id"]: r for r in await engine.store.get_step_executions(doc["id"])}
    row = rows["second"]
    assert seen["execution_id"] == doc["id"]
    assert seen["step_id"] == "second"
    assert seen["step_execution_id"] == row["id"]
    assert seen["attempt"] == row["attempt"] == 1
    assert seen["idempotency_key"] == row["idempotency_key"] != row["id"]
    assert seen["loop"] == {}
    assert seen["started_at"] == row["started_at"]
    assert seen["definition_input"] == {"value": "{{ steps.first.output.value }}"}
    assert seen["depth"] == 0
    assert seen["heartbeat_details"] is None
    assert seen["variable"] == 7
    assert seen["now"] >= seen["started_at"]
    assert seen["http"] is not None and seen["logger"] is not None
    assert seen["entities"] is not None and seen["artifacts"] is not None
