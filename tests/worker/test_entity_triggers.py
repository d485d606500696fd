"""Entity triggers: the outbox, exactly-once starts across restarts, and runaway chains."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from flowledger import DefinitionError, Engine, StepRegistry
from flowledger.definition.strictness import stored_definitions
from flowledger.runtime.creation import MAX_DEPTH
from flowledger.storage import ExecutionQuery
from flowledger.storage.schema_entities import entity_events
from flowledger.worker.entity_dispatch import EntityDispatcher
from flowledger.worker.worker import Worker, WorkerOptions

FAST = WorkerOptions(
    concurrency=4, lease=timedelta(seconds=3), park_after=0.3, max_idle=0.05, max_duty_wait=0.05
)

ON_LEAD = """
name: on_lead
triggers:
  - type: entity
    entity_type: Lead
    events: [created]
steps:
  - {id: greet, type: sys.transform, input: {value: "hello {{ trigger.entity.payload.Email }}"}}
output: "{{ steps.greet.output }}"
"""


async def _push(engine: Engine, text: str) -> None:
    await engine.push(engine.load_text(textwrap.dedent(text), "test.yaml"))


async def _executions(engine: Engine, workflow: str | None = None) -> list[dict[str, Any]]:
    return await engine.list_executions(ExecutionQuery(workflow=workflow, limit=100))


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the expected state was never reached")


async def test_a_write_starts_the_workflow_once_with_the_trigger_document(engine: Engine) -> None:
    await engine.entities.create_type("Lead")
    await _push(engine, ON_LEAD)
    lead = await engine.entities.create("Lead", {"Email": "ada@example.com"})
    dispatcher = EntityDispatcher(engine)
    [execution_id] = await dispatcher.dispatch_pending()
    assert await dispatcher.dispatch_pending() == []
    doc = await engine.get_execution(execution_id)
    assert doc["trigger"] == {
        "type": "entity",
        "eventType": "created",
        "entity": lead,
        "previousEntity": None,
    }
    assert (doc["runtimeStatus"], doc["createdBy"]) == ("NotStarted", "entity-trigger")
    row = await engine.store.get_execution(execution_id)
    assert row is not None and row["depth"] == 1  # one hop from a write made outside
    done = await engine.drive(execution_id)
    assert done["output"] == "hello ada@example.com"


async def test_events_types_and_when_choose_what_starts(engine: Engine) -> None:
    await engine.entities.create_type("Lead")
    await engine.entities.create_type("Note")
    await _push(
        engine,
        """
        name: on_won
        triggers:
          - type: entity
            entity_type: Lead
            events: [updated]
            when: "{{ trigger.entity.payload.Status == 'Won' and trigger.previousEntity.payload.Status != 'Won' }}"
        steps: [{id: x, type: sys.no_action}]
        """,
    )
    await _push(
        engine,
        """
        name: on_gone
        triggers: [{type: entity, entity_type: Lead, events: [deleted]}]
        steps: [{id: x, type: sys.no_action}]
        """,
    )
    dispatcher = EntityDispatcher(engine)
    lead = await engine.entities.create("Lead", {"Status": "New"})
    await engine.entities.create("Note", {"Status": "Won"})
    await engine.entities.update(lead["id"], {"Status": "Open"})
    assert await dispatcher.dispatch_pending() == []
    before = await engine.entities.get(lead["id"])
    won = await engine.entities.update(lead["id"], {"Status": "Won"})
    await engine.entities.update(lead["id"], {"Score": 1})  # still Won: not again
    [won_id] = await dispatcher.dispatch_pending()
    trigger = (await engine.get_execution(won_id))["trigger"]
    assert (trigger["eventType"], trigger["entity"], trigger["previousEntity"]) == (
        "updated",
        won,
        before,
    )
    last = await engine.entities.get(lead["id"])
    await engine.entities.delete(lead["id"])
    [gone_id] = await dispatcher.dispatch_pending()
    trigger = (await engine.get_execution(gone_id))["trigger"]
    assert (trigger["eventType"], trigger["entity"], trigger["previousEntity"]) == (
        "deleted",
        last,
        None,
    )
    assert await engine.store.pending_entity_events(10) == []


async def test_a_when_that_cannot_be_evaluated_is_a_failed_execution_that_says_why(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The event is not dropped with only a log line: it is listed, once."""
    await engine.entities.create_type("Lead")
    await _push(
        engine,
        """
        name: picky
        triggers:
          - {type: entity, entity_type: Lead, when: "{{ trigger.entity.payload.Status == 'New' }}"}
        steps: [{id: x, type: sys.no_action}]
        """,
    )
    await _push(  # another trigger that matches starts it as usual
        engine,
        """
        name: either
        triggers:
          - {type: entity, entity_type: Lead, when: "{{ trigger.entity.payload.Status == 'New' }}"}
          - {type: entity, entity_type: Lead, when: "{{ trigger.entity.payload.Email != '' }}"}
        steps: [{id: x, type: sys.no_action}]
        """,
    )
    lead = await engine.entities.create("Lead", {"Email": "no status"})
    await engine.entities.create("Lead", {"Status": "New"})
    dispatcher = EntityDispatcher(engine)
    with caplog.at_level(logging.WARNING, logger="flowledger.worker.entity_dispatch"):
        await dispatcher.dispatch_pending()
    [refused] = [d["id"] for d in await _executions(engine, "picky") if d["error"]]
    [started] = [d["id"] for d in await _executions(engine, "picky") if not d["error"]]
    either = [d["runtimeStatus"] for d in await _executions(engine, "either")]
    assert either == ["NotStarted", "NotStarted"]  # a when failed, but the other held
    assert await dispatcher.dispatch_pending() == []
    doc = await engine.get_execution(refused)
    assert (doc["runtimeStatus"], doc["createdBy"]) == ("Failed", "entity-trigger")
    assert doc["trigger"]["entity"] == lead
    message = doc["error"]["message"]
    assert message.startswith(
        f"triggers[0].when of workflow 'picky' could not be evaluated for the created event "
        f"of Lead entity {lead['id']}, so the workflow did not run: "
    )
    assert "trigger.entity.payload has no field 'Status'" in message
    kinds = [e["kind"] for e in await engine.events(refused)]
    assert kinds == ["execution.created", "execution.started", "execution.failed"]
    assert refused in caplog.text and "workflow 'picky'" in caplog.text
    assert (await engine.get_execution(started))["runtimeStatus"] == "NotStarted"


STATUS_CHANGE = """
name: status_change
triggers:
  - type: entity
    entity_type: Order
    events: [created, updated]
    when: "{{ trigger.previousEntity.payload.Status != trigger.entity.payload.Status }}"
steps: [{id: x, type: sys.no_action}]
"""


async def test_a_stored_when_that_reads_a_null_previous_entity_fails_its_created_events(
    engine: Engine,
) -> None:
    """Refused in a new definition (tests/definition/test_triggers.py); a version stored
    before still runs, and its created events say why they started nothing."""
    with pytest.raises(DefinitionError, match="previousEntity is null"):
        engine.load_text(textwrap.dedent(STATUS_CHANGE))
    await engine.entities.create_type("Order")
    with stored_definitions():
        await _push(engine, STATUS_CHANGE)
    order = await engine.entities.create("Order", {"Status": "New"})
    await engine.entities.update(order["id"], {"Status": "Paid"})
    refused, started = await EntityDispatcher(engine).dispatch_pending()
    doc = await engine.get_execution(refused)
    assert doc["runtimeStatus"] == "Failed"
    assert "for the created event of Order entity" in doc["error"]["message"]
    assert "trigger.previousEntity is null" in doc["error"]["message"]
    updated = await engine.get_execution(started)
    assert updated["trigger"]["eventType"] == "updated"
    assert updated["runtimeStatus"] == "NotStarted"


async def test_dispatching_an_event_again_never_starts_a_second_execution(
    db_url: str, engine: Engine
) -> None:
    """A dispatcher that dies after starting the execution but before marking the event
    leaves it pending: the next dispatcher (another engine) finds the execution started."""
    await engine.entities.create_type("Lead")
    await _push(engine, ON_LEAD)
    await engine.entities.create("Lead", {"Email": "a@b"})
    [first] = await EntityDispatcher(engine).dispatch_pending()
    store = engine.store
    with store.conn.begin():  # type: ignore[attr-defined]
        store.conn.execute(update(entity_events).values(dispatched_at=None))  # type: ignore[attr-defined]
    async with Engine(db_url) as other:
        assert await EntityDispatcher(other).dispatch_pending() == [first]
    assert [e["id"] for e in await _executions(engine)] == [first]
    assert await store.pending_entity_events(10) == []


async def test_a_write_left_undispatched_starts_exactly_once_after_a_restart(
    db_url: str,
) -> None:
    async with Engine(db_url) as engine:
        await engine.entities.create_type("Lead")
        await _push(engine, ON_LEAD)
        await engine.entities.create("Lead", {"Email": "ada@example.com"})
    # A new process: the event is still in the outbox, and a worker picks it up.
    async with Engine(db_url) as engine:
        worker = Worker(engine, FAST)
        task = asyncio.create_task(worker.run())

        async def completed() -> bool:
            docs = await _executions(engine, "on_lead")
            return [d["runtimeStatus"] for d in docs] == ["Completed"]

        await _eventually(completed)
        await asyncio.sleep(0.2)  # a few more duty rounds: nothing else may start
        worker.stop()
        await task
        [doc] = await _executions(engine)
        assert doc["output"] == "hello ada@example.com"
        assert await engine.store.pending_entity_events(10) == []


async def test_a_workflow_that_triggers_itself_stops_at_the_depth_limit(
    db_url: str, registry: StepRegistry
) -> None:
    async with Engine(db_url, registry=registry) as engine:
        await engine.entities.create_type("Counter")
        await _push(
            engine,
            """
            name: echo
            triggers: [{type: entity, entity_type: Counter, events: [created, updated]}]
            steps:
              - id: bump
                type: sys.update_entity
                input: {entity_id: "{{ trigger.entity.id }}", payload: {n: "{{ trigger.entity.version }}"}}
            """,
        )
        counter = await engine.entities.create("Counter", {"n": 0})
        worker = Worker(engine, FAST)
        task = asyncio.create_task(worker.run())

        async def stopped() -> bool:
            docs = await _executions(engine, "echo")
            return any(d["runtimeStatus"] == "Failed" for d in docs)

        await _eventually(stopped)
        # The worker is still healthy: other work runs.
        plain = await engine.start(
            engine.load_text("name: plain\nsteps: [{id: x, type: sys.no_action}]\n")
        )

        async def plain_done() -> bool:
            doc = await engine.get_execution(plain)
            return bool(doc["runtimeStatus"] == "CompletedWithNoActionTaken")

        await _eventually(plain_done)
        await asyncio.sleep(0.2)  # nothing more starts after the stop
        worker.stop()
        await task
        docs = await _executions(engine, "echo")
        rows = [await engine.store.get_execution(d["id"]) for d in docs]
        depths = sorted((r["depth"], r["runtime_status"]) for r in rows if r is not None)
        assert depths == [(d, "Completed") for d in range(1, MAX_DEPTH + 1)] + [
            (MAX_DEPTH + 1, "Failed")
        ]
        [failed] = [d for d in docs if d["runtimeStatus"] == "Failed"]
        message = failed["error"]["message"]
        assert message.startswith("entity trigger chain stopped")
        assert "Counter entity" in message and "'echo'" in message
        assert f"depth limit {MAX_DEPTH}" in message
        assert failed["failedAt"] is not None
        events = await engine.events(failed["id"])
        assert [e["kind"] for e in events] == [
            "execution.created",
            "execution.started",
            "execution.failed",
        ]
        assert (await engine.entities.get(counter["id"]))["version"] == MAX_DEPTH + 1
        assert await engine.store.pending_entity_events(10) == []


async def test_writes_made_before_the_first_push_never_start_the_workflow(
    engine: Engine,
) -> None:
    await engine.entities.create_type("Lead")
    await engine.entities.create("Lead", {"Email": "early@example.com"})
    await _push(engine, ON_LEAD)  # no worker ran in between: the early event is still pending
    await engine.entities.create("Lead", {"Email": "late@example.com"})
    started = await EntityDispatcher(engine).dispatch_pending()
    assert len(started) == 1
    done = await engine.drive(started[0])
    assert done["output"] == "hello late@example.com"
    # A new version of the workflow keeps the first push as the start of its triggers.
    await _push(engine, ON_LEAD.replace("hello", "hi"))
    await engine.entities.create("Lead", {"Email": "third@example.com"})
    [third] = await EntityDispatcher(engine).dispatch_pending()
    assert (await engine.drive(third))["output"] == "hi third@example.com"
