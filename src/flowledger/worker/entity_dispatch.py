"""Worker duty: entity events into the executions their triggers start.

Every entity write leaves an event in the outbox (storage/entities.py). For each
undispatched event, oldest first, every pushed workflow with an entity trigger on that
type and event whose ``when`` holds gets one execution, with the trigger document
``{type: entity, eventType, entity, previousEntity}`` (``previousEntity`` is the entity
before an update, null otherwise; for a delete ``entity`` is the entity as it was).
Then the event is marked dispatched.

Exactly once: the execution's trigger key is ``entity:<event id>:<workflow name>``, so
two workers dispatching the same event, or a worker that dies between starting the
execution and marking the event, never start a second one. A workflow with several
entity triggers that match one event starts once (the first matching trigger).

Runaway chains: an execution started by an event gets depth = the writer's depth + 1
(writes from the CLI, API or Python are depth 0, so their executions have depth 1).
Past MAX_DEPTH the workflow does not run: its execution is created ``Failed`` with an
error that says why, so the stop shows in ``flowledger executions list``.

A ``when`` that cannot be evaluated for an event (e.g. it reads a field the entity
lacks) does not run the workflow: unless another of its triggers matches, the execution
is created ``Failed`` with the template's error (worker.refusals), so a dropped event is
listed, not only logged. A pushed workflow that cannot be compiled here (a plugin step
type this worker lacks) is logged and skipped.

An event triggers the workflows pushed (for the first time) before it was written, in the
version that is live when the event is dispatched; writes made before a workflow existed
never start it, however late a worker gets to them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.triggers import CompiledTrigger, EntityTrigger
from flowledger.errors import TemplateError
from flowledger.logs import log_extra
from flowledger.runtime.creation import MAX_DEPTH, Lineage, execution_rows
from flowledger.runtime.engine import Engine
from flowledger.storage import Row, WorkflowVersion
from flowledger.worker.refusals import refused

log = logging.getLogger(__name__)

#: createdBy of executions that entity triggers start.
CREATOR = "entity-trigger"
BATCH = 100


@dataclass(frozen=True)
class _Subscriber:
    workflow: CompiledWorkflow
    version: WorkflowVersion
    triggers: tuple[CompiledTrigger, ...]
    #: Writes before this (the workflow's first push) do not trigger it.
    since: datetime


class EntityDispatcher:
    name = "entity_dispatch"
    paced = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run_once(self) -> float:
        events = await self.engine.store.pending_entity_events(BATCH)
        if not events:
            return 1.0
        await self._dispatch(events)
        # A full batch means more are waiting; after activity, chains often continue soon.
        return 0.0 if len(events) == BATCH else 0.1

    async def dispatch_pending(self) -> list[str]:
        """Dispatch every pending event now; returns the ids of the executions started.

        For programs and tests that run no worker (a worker does this every second).
        """
        started: list[str] = []
        while events := await self.engine.store.pending_entity_events(BATCH):
            started += await self._dispatch(events)
        return started

    async def _dispatch(self, events: list[Row]) -> list[str]:
        subscribers = await self._subscribers()
        started: list[str] = []
        for event in events:
            trigger = trigger_document(event)
            for sub in subscribers:
                matched, failure = self._first_match(sub, event, trigger)
                if matched is not None:
                    started.append(await self._start(sub, matched, event, trigger, failure))
            await self.engine.store.mark_entity_event_dispatched(event["id"])
        return started  # each start woke the workers as it was created

    async def _subscribers(self) -> list[_Subscriber]:
        found = []
        first = await self.engine.store.first_pushes()
        for version, pushed_at, workflow in await self.engine.live_workflows("entity triggers"):
            triggers = tuple(t for t in workflow.triggers if isinstance(t.spec, EntityTrigger))
            if triggers:
                since = first.get(version.name, pushed_at)
                found.append(_Subscriber(workflow, version, triggers, since))
        return found

    def _first_match(
        self, sub: _Subscriber, event: Row, trigger: Mapping[str, Any]
    ) -> tuple[CompiledTrigger | None, str | None]:
        """The first trigger of ``sub`` that matches the event; else the first whose
        ``when`` could not be evaluated, with why (the event is refused, not dropped)."""
        failed: tuple[CompiledTrigger, str] | None = None
        for compiled in sub.triggers:
            spec = compiled.spec
            assert isinstance(spec, EntityTrigger)
            if spec.entity_type != event["entity_type"] or event["event_type"] not in spec.events:
                continue
            if event["created_at"] < sub.since:
                continue  # written before the workflow was pushed: not its business
            if compiled.when is None:
                return compiled, None
            try:
                if compiled.when.render({"trigger": trigger, "context": sub.workflow.spec.context}):
                    return compiled, None
            except TemplateError as exc:
                if failed is None:
                    failed = (
                        compiled,
                        (
                            f"triggers[{compiled.index}].when of workflow {sub.workflow.name!r} "
                            f"could not be evaluated for the {event['event_type']} event of "
                            f"{event['entity_type']} entity {event['entity_id']}, so the workflow "
                            f"did not run: {exc.message}"
                        ),
                    )
        return failed if failed is not None else (None, None)

    async def _start(
        self,
        sub: _Subscriber,
        compiled: CompiledTrigger,
        event: Row,
        trigger: Mapping[str, Any],
        failure: str | None = None,
    ) -> str:
        """Start the execution; ``failure``: why the trigger could not decide (created
        Failed with it)."""
        depth = int(event["depth"]) + 1
        row, created = execution_rows(
            sub.workflow,
            sub.version,
            trigger=trigger,
            now=self.engine.clock.now(),
            created_by=CREATOR,
            lineage=Lineage(depth=depth, trigger_key=f"entity:{event['id']}:{sub.workflow.name}"),
        )
        rows = [created]
        if depth > MAX_DEPTH:
            message = (
                f"entity trigger chain stopped: the {event['event_type']} event of "
                f"{event['entity_type']} entity {event['entity_id']} would start workflow "
                f"{sub.workflow.name!r} at depth {depth}, past the depth limit {MAX_DEPTH}; "
                "a workflow whose steps write the entity type that triggers it must stop "
                "itself (a when on the trigger or the steps)"
            )
            rows += refused(row, message)
            log.error(
                "%s (execution %s)",
                message,
                row["id"],
                extra=log_extra("dispatch_entity_event", row["id"]),
            )
        elif failure is not None:
            rows += refused(row, failure)
            log.warning(
                "%s (execution %s, Failed)",
                failure,
                row["id"],
                extra=log_extra("dispatch_entity_event", row["id"]),
            )
        return await self.engine.store.create_execution(row, rows)


def trigger_document(event: Row) -> dict[str, Any]:
    previous = event["previous"]
    return {
        "type": "entity",
        "eventType": event["event_type"],
        "entity": json.loads(event["entity"]),
        "previousEntity": json.loads(previous) if previous is not None else None,
    }
