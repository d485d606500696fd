"""The seed's runs resource and instance-state view: views over the executions, not a
second store (issue 13 point 4). Every operation calls :class:`Executions` and maps.

Workflow runs (``/workflow-runs``): ``{id, workflowId, jobRunId, createdByUserId,
status, currentStateName, createdAt, updatedAt, completedAt}``.

- ``id`` is the execution id; ``workflowId`` is the **workflow name** (decision: the
  name is what clients know and push; a version id would change with every push — the
  version a run used is its execution's ``workflowTemplateVersionId``);
- ``createdByUserId`` is ``createdBy`` (``api-token:NAME`` over HTTP);
- ``updatedAt`` is ``lastActivityAt``; ``completedAt`` is when it ended, whichever way
  (the seed has one end time: ``completedAt`` or ``failedAt`` of the execution);
- ``status`` in the seed's names (:data:`SEED_STATUS`); timestamps ISO-8601 as in §4.

Instance states (``/executions/{id}/states``): WorkflowInstanceState records built from
the event history, one per stage of a pass. A **pass** is the first run, then each retry
in place (an ``execution.retried`` event starts the next). A **stage** is one step of
the workflow in that pass: ``tasks`` are its step execution ids (several for a step in a
loop or retried within the pass), ``startedAt``/``endedAt`` the first start and the last
end in epoch milliseconds (``endedAt`` null while it runs), ``variables`` the user
variables as of the stage's end (the workflow's initial variables, then each completed
variable-setting step's value in commit order; a rerun's reused steps, which its
``step.reused`` events record at its start, count as completed then), ``exception``
whether its last attempt in the pass failed. Ids are stable: uuid5 of (execution, pass)
and (execution, pass, step).

Paged (``limit``, ``cursor``), a page's cursor is the last record's id: a stage keeps its
place in the list (the history is never rewritten; new stages come after), so the next
page starts after it. Each page builds the records from the whole history again: paging
bounds the answer, not the read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowledger.app.executions import Executions
from flowledger.app.limits import page_size
from flowledger.app.models import (
    STATES_PAGE,
    CreateWorkflowRun,
    GetExecution,
    GetWorkflowRun,
    ListEvents,
    ListExecutions,
    ListStates,
    ListWorkflowRuns,
    SeedStatus,
    StartExecution,
)
from flowledger.app.paging import Codec, Listing, Position, keyset_page
from flowledger.app.results import Page, WorkflowInstanceState, WorkflowRunDocument
from flowledger.config import Limits
from flowledger.definition.source import parse_document
from flowledger.runtime.engine import Engine
from flowledger.steps.builtins import variable_after
from flowledger.types import EventDocument, ExecutionDocument

#: Our execution status → the seed's run status.
SEED_STATUS: dict[str, SeedStatus] = {
    "NotStarted": "PENDING",
    "InProgress": "IN_PROGRESS",
    "AwaitingUserInput": "AWAITING_USER_INPUT",
    "Completed": "COMPLETED",
    "CompletedWithNoActionTaken": "COMPLETED_WITH_NO_ACTION_TAKEN",
    "Failed": "FAILED",
    "Cancelled": "CANCELLED",
}
OUR_STATUS: dict[str, str] = {seed: ours for ours, seed in SEED_STATUS.items()}

#: The namespace of the instance-state ids (uuid5).
STATE_NAMESPACE = uuid.UUID("6f1c1f0e-6b1e-5c8e-9d53-1f0c6c1e7a11")

_ENDS = {"step.completed", "step.failed", "step.cancelled", "step.disabled", "step.reused"}
#: A step that ended with its output: a rerun's reused step is one, copied at its start.
_DONE = {"step.completed", "step.reused"}


def run_document(doc: ExecutionDocument) -> WorkflowRunDocument:
    return {
        "id": doc["id"],
        "workflowId": doc["workflowName"],
        "jobRunId": doc["jobRunId"],
        "createdByUserId": doc["createdBy"],
        "status": SEED_STATUS[doc["runtimeStatus"]],
        "currentStateName": doc["currentStateName"],
        "createdAt": doc["createdAt"],
        "updatedAt": doc["lastActivityAt"],
        "completedAt": doc["completedAt"] or doc["failedAt"],
    }


class Seed(Listing):
    """The seed's views (see :class:`flowledger.app.App`)."""

    def __init__(
        self, engine: Engine, executions: Executions, codec: Codec, limits: Limits | None = None
    ) -> None:
        super().__init__(engine, codec, limits)
        self._executions = executions

    async def list_runs(self, request: ListWorkflowRuns) -> Page[WorkflowRunDocument]:
        """Runs newest first, paginated exactly like the executions they are."""
        status = OUR_STATUS.get(request.status) if request.status else None
        given = {"limit": request.limit} if "limit" in request.model_fields_set else {}
        page = await self._executions.list(
            ListExecutions(
                status=status,
                workflow=request.workflow_id,
                job_run_id=request.job_run_id,
                cursor=request.cursor,
                **given,
            )
        )
        items = [run_document(doc) for doc in page.items]
        return Page[WorkflowRunDocument](items=items, next_cursor=page.next_cursor)

    async def get_run(self, request: GetWorkflowRun) -> WorkflowRunDocument:
        return run_document(await self._executions.get(GetExecution(id=request.id)))

    async def create_run(self, request: CreateWorkflowRun) -> WorkflowRunDocument:
        """Start the pushed workflow named ``workflowId`` (the workers run it); with an
        ``idempotency_key``, once per key, as a start is (one key space for both: a
        key used by either answers the execution it started)."""
        doc = await self._executions.start(
            StartExecution(
                workflow=request.workflow_id,
                input=request.input or {},
                created_by=request.created_by,
                idempotency_key=request.idempotency_key,
            )
        )
        return run_document(doc)

    async def states(self, request: ListStates) -> Page[WorkflowInstanceState]:
        """The execution's instance states: all of them in one page, or one page when
        ``limit`` or ``cursor`` is given."""
        found = await self._all_states(request.id)
        if request.limit is None and request.cursor is None:
            return Page[WorkflowInstanceState](items=found)
        ids = [state["id"] for state in found]

        async def fetch(n: int, after: Position | None) -> list[WorkflowInstanceState]:
            start = 0
            if after is not None:  # a cursor of this execution names one of its records
                start = ids.index(after[1]) + 1 if after[1] in ids else len(ids)
            return found[start : start + n]

        limit = page_size(request, self._limits.max_page) if request.limit else STATES_PAGE
        items, cursor = await keyset_page(
            await self._codec(),
            "states",
            {"execution": request.id},
            request.cursor,
            min(limit, self._limits.max_page),
            fetch,
            _state_position,
        )
        return Page[WorkflowInstanceState](items=items, next_cursor=cursor)

    async def _all_states(self, execution_id: str) -> list[WorkflowInstanceState]:
        doc = await self._executions.get(GetExecution(id=execution_id))
        events = [
            e async for page in self._executions.history(ListEvents(id=execution_id)) for e in page
        ]
        # Read from the stored document, not compiled: a history needs no step handlers
        # (an API node serves it without the workers' plugins).
        version = await self._engine.workflow_version(doc["workflowTemplateVersionId"])
        data = parse_document(version.document, f"{version.name}@v{version.version}").data
        setters = set(self._setters(data.get("steps")))
        outputs = {
            step_execution_id: step["outputData"]
            for step_execution_id, step in (doc.get("steps") or {}).items()
            if step["stepId"] in setters and step["status"] == "Completed"
        }
        variables = data.get("variables")
        return build_states(
            doc, events, dict(variables) if isinstance(variables, dict) else {}, setters, outputs
        )

    def _setters(self, steps: Any) -> Iterator[str]:
        """Ids of the steps, loop bodies included, whose type sets a variable."""
        for step in steps if isinstance(steps, list) else ():
            if not isinstance(step, dict):
                continue
            step_type = self._engine.registry.get(str(step.get("type")))
            if step_type is not None and step_type.sets_variable:
                yield str(step.get("id"))
            yield from self._setters(step.get("steps"))


@dataclass
class _Stage:
    pass_no: int
    name: str
    started: int | None = None
    ended: int | None = None
    last: int = 0
    tasks: list[str] = field(default_factory=list)
    failed: bool = False
    variables: dict[str, Any] = field(default_factory=dict)


def build_states(
    doc: ExecutionDocument,
    events: list[EventDocument],
    variables: dict[str, Any],
    setters: set[str],
    outputs: dict[str, Any],
) -> list[WorkflowInstanceState]:
    """The WorkflowInstanceState records of one execution, oldest stage first."""
    execution_id = doc["id"]
    pass_no = 0
    stages: dict[tuple[int, str], _Stage] = {}
    for event in events:
        at = _ms(event["at"])
        if event["kind"] == "execution.retried":
            pass_no += 1
            continue
        step_id, run_id = event["stepId"], event["stepExecutionId"]
        if step_id is None or run_id is None:
            continue
        stage = stages.setdefault((pass_no, step_id), _Stage(pass_no, step_id))
        if run_id not in stage.tasks:
            stage.tasks.append(run_id)
        if event["kind"] in ("step.started", "step.reused") and stage.started is None:
            stage.started = at
        stage.last = at
        if event["kind"] in _ENDS:
            stage.ended = at
            stage.failed = event["kind"] == "step.failed"
            if event["kind"] in _DONE and step_id in setters:
                out = outputs.get(run_id)
                if isinstance(out, dict) and "name" in out:
                    name = out["name"]
                    variables = {**variables, name: variable_after(variables.get(name), out)}
        stage.variables = variables
    return [_record(execution_id, doc["workflowTemplateVersionId"], s) for s in stages.values()]


def _record(execution_id: str, definition_id: str, stage: _Stage) -> WorkflowInstanceState:
    pass_id = uuid.uuid5(STATE_NAMESPACE, f"{execution_id}/{stage.pass_no}")
    return {
        "id": str(uuid.uuid5(STATE_NAMESPACE, f"{execution_id}/{stage.pass_no}/{stage.name}")),
        "workflowInstanceId": execution_id,
        "workflowInstanceExecutionId": str(pass_id),
        "workflowDefinitionId": definition_id,
        "stage": {
            "name": stage.name,
            "startedAt": stage.started if stage.started is not None else stage.last,
            "endedAt": stage.ended,
            "tasks": list(stage.tasks),
            "variables": dict(stage.variables),
        },
        "timestamp": stage.last,
        "exception": stage.failed,
    }


def _state_position(state: WorkflowInstanceState) -> Position:
    """Where a cursor seals a record: its id (what the next page starts after), with
    its stage's start."""
    return datetime.fromtimestamp(state["stage"]["startedAt"] / 1000, UTC), state["id"]


def _ms(text: str) -> int:
    """An ISO-8601 time (``…Z``) as integer Unix epoch milliseconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
