"""A workflow's ``on_failure``: the pushed workflow started when one of its executions
ends Failed (Conductor's failureWorkflow), with the input ``{executionId, workflowName,
workflowVersion, error}``.

Decisions. It is created in the round that records the failure, in the same commit
(Journal.create_execution, as a child is), so a crash cannot lose it nor start it twice;
the handler workflow is resolved (its pushed version) when a runner takes the execution
up, because the round that fails cannot wait on the database. It is linked by
correlation id (the failed execution's), by its trigger ``{type: onFailure,
failedExecutionId}`` and by ``createdBy: execution:<id>``, not as a child: a child's end
is signalled to its parent, which has ended already; a cancel of the parent, its
descendant budget and a retry's look for earlier children would all reach it. The failed
execution's error names it (``onFailure: {workflow, executionId}``, or ``{workflow,
error}`` when it could not be started). An execution started by ``on_failure`` starts
none itself: two workflows naming each other would go on for ever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import FlowledgerError
from flowledger.runtime.creation import execution_rows, validate_input
from flowledger.runtime.journal import Journal
from flowledger.storage import WorkflowVersion

#: The trigger type of an execution started by ``on_failure``.
ON_FAILURE = "onFailure"

Resolve = Callable[[str, int | None], Awaitable[tuple[CompiledWorkflow, WorkflowVersion]]]


class FailureHandler:
    """The ``on_failure`` of one execution: resolved ahead, started with its failure."""

    def __init__(self, workflow: CompiledWorkflow, trigger: Mapping[str, Any]) -> None:
        spec = workflow.spec.on_failure
        #: The handler's name; None when there is none to start.
        self.name = spec.workflow if spec and trigger.get("type") != ON_FAILURE else None
        self._resolved: tuple[CompiledWorkflow, WorkflowVersion] | None = None
        self._problem = "it was not looked up"
        #: The id of the handler execution this runner created (its commit wakes workers).
        self.started: str | None = None

    async def prepare(self, resolve: Resolve | None) -> None:
        """Look the handler workflow up (its pushed version), before any round runs."""
        if self.name is None or self._resolved is not None:
            return
        if resolve is None:
            self._problem = "this engine cannot start workflows"
            return
        try:
            self._resolved = await resolve(self.name, None)
        except FlowledgerError as exc:  # deleted since the push that checked it
            self._problem = str(exc)

    def start(
        self, error: dict[str, Any], journal: Journal, info: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Create the handler execution in this round's commit; ``error`` with the link."""
        if self.name is None:
            return error
        if self._resolved is None:
            return {**error, "onFailure": {"workflow": self.name, "error": self._problem}}
        handler, version = self._resolved
        failed_id = str(info["id"])
        arguments = {
            "executionId": failed_id,
            "workflowName": info.get("workflowName"),
            "workflowVersion": info.get("workflowVersion"),
            "error": error,
        }
        try:
            arguments = validate_input(handler, arguments)
        except FlowledgerError as exc:
            problem = f"its input_schema refused the failure: {exc}"
            return {**error, "onFailure": {"workflow": self.name, "error": problem}}
        row, created = execution_rows(
            handler,
            version,
            trigger={"type": ON_FAILURE, "arguments": arguments, "failedExecutionId": failed_id},
            now=now,
            created_by=f"execution:{failed_id}",
            correlation_id=info.get("correlationId"),
            codec=journal.codec,  # written by the failed execution: redacted as it is
        )
        journal.create_execution(row, created)
        self.started = str(row["id"])
        return {**error, "onFailure": {"workflow": self.name, "executionId": self.started}}
