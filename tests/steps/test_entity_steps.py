"""The entity step types in real workflows: outputs per SPEC §2, failures, crash re-runs."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from typing import Any

import pytest

from flowledger import DefinitionError, Engine, StepContext, StepRegistry, step_type
from flowledger.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    StepError,
    StorageError,
)
from flowledger.steps.entities import (
    CreateEntityInput,
    CreateEntityOutput,
    _call,
    create_entity,
)
from tests.conftest import RunYaml

SCHEMA = {
    "type": "object",
    "properties": {"Email": {"type": "string"}, "Score": {"type": "integer"}},
    "required": ["Email"],
}


def _outputs(doc: dict[str, Any]) -> dict[str, Any]:
    return {s["stepId"]: s["outputData"] for s in doc["steps"].values()}


def _attempts(doc: dict[str, Any], step_id: str) -> list[dict[str, Any]]:
    return [s for s in doc["steps"].values() if s["stepId"] == step_id]


async def test_create_update_query_delete(engine: Engine, run_yaml: RunYaml) -> None:
    await engine.entities.create_type("Lead", SCHEMA)
    await engine.entities.create("Lead", {"Email": "old@x", "Score": 1})
    doc = await run_yaml(
        """
        name: crud
        steps:
          - id: make
            type: sys.create_entity
            input: {entity_type: Lead, payload: {Email: ada@example.com, Score: 5}}
          - id: change
            type: sys.update_entity
            input: {entity_id: "{{ steps.make.output.entityId }}", payload: {Score: 7}}
          - id: find
            type: sys.query_entity
            input: {entity_type: Lead, filter: {Score: {gt: 2}}, order_by: -Score, limit: 10}
          - id: remove
            type: sys.delete_entity
            input: {entity_id: "{{ steps.find.output.entities[0].id }}"}
        output:
          email: "{{ steps.find.output.entities[0].payload.Email }}"
        """
    )
    assert doc["runtimeStatus"] == "Completed", doc["error"]
    out = _outputs(doc)
    entity_id = out["make"]["entityId"]
    assert out["make"] == {
        "entityId": entity_id,
        "entityTypeId": "Lead",
        "payload": {"Email": "ada@example.com", "Score": 5},
    }
    assert out["change"] == {
        "entityId": entity_id,
        "entityTypeId": "Lead",
        "payload": {"Email": "ada@example.com", "Score": 7},
        "previousPayload": {"Email": "ada@example.com", "Score": 5},
    }
    assert set(out["find"]) == {"entities", "totalCount", "hasMore"}
    assert (out["find"]["totalCount"], out["find"]["hasMore"]) == (1, False)
    [found] = out["find"]["entities"]
    assert (found["id"], found["entityType"], found["version"]) == (entity_id, "Lead", 2)
    assert set(found) == {"id", "entityType", "version", "payload", "createdAt", "updatedAt"}
    assert out["remove"] == {"entityId": entity_id, "entityTypeId": "Lead"}
    assert doc["output"] == {"email": "ada@example.com"}
    assert (await engine.entities.list("Lead")).total_count == 1
    # Each write recorded its event with the execution that made it.
    events = await engine.store.pending_entity_events(10)
    assert [e["event_type"] for e in events] == ["created", "created", "updated", "deleted"]
    assert {e["execution_id"] for e in events[1:]} == {doc["id"]}


async def test_a_schema_violation_fails_the_step_at_once_naming_the_field(
    engine: Engine, run_yaml: RunYaml
) -> None:
    await engine.entities.create_type("Lead", SCHEMA)
    doc = await run_yaml(
        """
        name: bad_payload
        steps:
          - id: make
            type: sys.create_entity
            input: {entity_type: Lead, payload: {Email: a@b, Score: high}}
            retry: {max_attempts: 3, initial_delay: 10ms}
        """
    )
    assert doc["runtimeStatus"] == "Failed"
    [step] = _attempts(doc, "make")  # not retried: another attempt cannot help
    assert "payload.Score: 'high' is not of type 'integer'" in step["error"]["message"]
    assert (await engine.entities.list("Lead")).total_count == 0


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            "{type: sys.update_entity, input: {entity_id: missing, payload: {Score: 1}}}",
            "entity missing does not exist",
        ),
        ("{type: sys.delete_entity, input: {entity_id: missing}}", "entity missing does not exist"),
        (
            "{type: sys.create_entity, input: {entity_type: Nope, payload: {}}}",
            "entity type 'Nope' does not exist",
        ),
        (
            "{type: sys.query_entity, input: {entity_type: Lead, filter: {Score: {near: 3}}}}",
            "filter.Score: unknown operator 'near'",
        ),
        (  # past 64 bits: a raw OverflowError, retried, where the CLI said it in words
            "{type: sys.query_entity, input: {entity_type: Lead, "
            "filter: {Score: 99999999999999999999}}}",
            "filter.Score: integers here are at most 9,223,372,036,854,775,807",
        ),
        (
            "{type: sys.query_entity, input: {entity_type: Lead, offset: 9223372036854775808}}",
            "offset: must be at most 9223372036854775807",
        ),
    ],
)
async def test_bad_references_fail_the_step_clearly(
    engine: Engine, run_yaml: RunYaml, step: str, message: str
) -> None:
    await engine.entities.create_type("Lead", SCHEMA)
    doc = await run_yaml(
        f"name: bad_ref\nsteps:\n  - {{id: it, retry: {{max_attempts: 3}}, {step[1:]}\n"
    )
    assert doc["runtimeStatus"] == "Failed"
    [attempt] = _attempts(doc, "it")
    assert message in attempt["error"]["message"]


def test_references_to_entity_outputs_are_checked_before_a_run(engine: Engine) -> None:
    text = textwrap.dedent(
        """
        name: typo
        steps:
          - {id: find, type: sys.query_entity, input: {entity_type: Lead}}
          - {id: use, type: sys.transform, input: {value: "{{ steps.find.output.entities[0].payload.Email }}"}}
          - {id: typo, type: sys.transform, input: {value: "{{ steps.find.output.totalcount }}"}}
        """
    )
    with pytest.raises(DefinitionError) as caught:
        engine.load_text(text, "typo.yaml")
    [problem] = caught.value.problems
    assert problem.step_id == "typo"
    assert "has no field 'totalcount'" in problem.message


async def test_a_write_re_run_after_a_crash_is_not_repeated(db_url: str) -> None:
    """The process dies after the entity was written but before the step's completion was
    recorded: the step runs again with the same idempotency key and writes nothing new."""
    calls: list[str] = []

    @step_type("test.create_then_hang")
    async def create_then_hang(data: CreateEntityInput, ctx: StepContext) -> CreateEntityOutput:
        output = await create_entity.handler(data, ctx)
        calls.append(ctx.idempotency_key)
        if len(calls) == 1:
            await asyncio.Event().wait()  # the crash comes here
        assert isinstance(output, CreateEntityOutput)
        return output

    registry = StepRegistry.with_builtins()
    registry.register(create_then_hang)
    text = (
        "name: once\nsteps:\n  - {id: make, type: test.create_then_hang, "
        "input: {entity_type: Lead, payload: {Email: a@b}}}\n"
    )
    async with Engine(db_url, registry=registry, owner="crashing") as engine:
        await engine.entities.create_type("Lead", SCHEMA)
        execution_id = await engine.start(engine.load_text(text))
        task = asyncio.create_task(engine.drive(execution_id))
        while not calls:
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    async with Engine(db_url, registry=registry, owner="crashing") as engine:
        doc = await engine.drive(execution_id)
        page = await engine.entities.list("Lead")
        events = await engine.store.pending_entity_events(10)
    assert doc["runtimeStatus"] == "Completed"
    assert len(calls) == 2 and calls[0] == calls[1]
    assert page.total_count == 1
    assert len(events) == 1
    [done] = [s for s in doc["steps"].values() if s["status"] == "Completed"]
    assert done["outputData"]["entityId"] == page.entities[0]["id"]


@pytest.mark.parametrize(
    ("raised", "retryable"),
    [
        (ConflictError("entity e kept changing while this write read it"), True),
        (StorageError("the database does not answer"), True),
        (NotFoundError("entity e does not exist"), False),
        (InputError("payload.Email: 3 is not of type 'string'"), False),
    ],
)
async def test_a_write_that_lost_its_race_is_worth_another_attempt(
    raised: Exception, retryable: bool
) -> None:
    """An update other writers kept beating is a ConflictError now (it was a
    StorageError): a step still tries it again, as it did."""

    async def write() -> None:
        raise raised

    with pytest.raises(StepError) as failed:
        await _call(write)
    assert failed.value.retryable is retryable and str(failed.value) == str(raised)
