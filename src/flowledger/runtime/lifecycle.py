"""The state of one running execution and its moves as a whole (SPEC §4).

The base of :class:`~flowledger.runtime.runner.ExecutionRunner`: what an execution
knows (its data store, scopes, timers, tasks), its status transitions (complete,
fail, cancel, await input, resume) and the template contexts of its steps. The
runner adds the scheduling: rounds, activation, handlers and timers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowledger.codec import Codec, loads
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.errors import FlowledgerError, TemplateError
from flowledger.logs import log_extra
from flowledger.runtime.datastore import SecretsView, template_context
from flowledger.runtime.journal import Journal
from flowledger.runtime.services import Services
from flowledger.runtime.state import Scope, StepRun
from flowledger.runtime.status import ALLOWED_MOVES, ExecutionStatus, StepStatus
from flowledger.runtime.variables import Variables
from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.steps.base import StepContext
from flowledger.steps.entity_access import EntityAccess
from flowledger.timeutil import iso

if TYPE_CHECKING:
    from flowledger.runtime.children import ChildWaits
    from flowledger.runtime.inbox import Inbox
    from flowledger.runtime.loops import LoopDriver
    from flowledger.runtime.waits import InputWaits

log = logging.getLogger("flowledger.runtime.runner")


class ExecutionLifecycle:
    loops: LoopDriver
    inputs: InputWaits
    children: ChildWaits
    inbox: Inbox

    def __init__(
        self,
        services: Services,
        workflow: CompiledWorkflow,
        execution: Mapping[str, Any],
        epoch: int,
        codec: Codec | None = None,
    ) -> None:
        self.services = services
        self.workflow = workflow
        self.id: str = execution["id"]
        self.codec = codec or Codec()
        self.clock = services.clock
        self.journal = Journal(
            services.store, self.codec, self.id, epoch, int(execution["event_seq"]), self.clock
        )
        self.status = ExecutionStatus(execution["runtime_status"])
        self.trigger: dict[str, Any] = loads(execution["trigger"]) or {}
        self.context: dict[str, Any] = loads(execution["context"]) or {}
        self.variables = Variables(loads(execution["variables"]) or {}, self.journal)
        self.info = {
            "id": self.id,
            "correlationId": execution["correlation_id"],
            "workflowName": execution["workflow_name"],
            "workflowVersion": execution["workflow_version"],
            "startedAt": iso(execution["started_at"]) if execution["started_at"] else None,
        }
        self.started_at: datetime | None = execution["started_at"]
        self.depth: int = int(execution.get("depth") or 0)
        self.parent_id: str | None = execution.get("parent_id")
        self.root_id: str | None = execution.get("root_id")
        #: Signals acted on so far; any sent beyond this are waiting in the signal table.
        self.signals_taken: int = int(execution.get("signals_taken") or 0)
        self.signals_waiting = int(execution.get("signals_sent") or 0) > self.signals_taken
        self.secrets = SecretsView(self.codec)
        self.root = Scope(key="", graph=workflow.graph, parent=None, loops={})
        self.ready: deque[tuple[Scope, CompiledStep]] = deque()
        self.to_launch: list[StepRun] = []
        self.tasks: dict[asyncio.Task[Any], StepRun] = {}
        # Finished handler tasks, in completion order; _wait drains them (O(1) per completion).
        self._finished: deque[asyncio.Task[Any]] = deque()
        self._wakeup = asyncio.Event()
        self.timers: list[tuple[datetime, int, str, StepRun]] = []
        self._timer_seq = itertools.count()
        self.step_seq = itertools.count(1)
        self.no_action = False
        #: Children run in this process (``drive``) rather than by whichever worker claims them.
        self.inline_children = False
        #: Told the ids of children each commit created (the engine may run them here).
        self.on_children: Callable[[list[str]], None] | None = None
        self.draining = False
        #: Set when run() returned early because only a distant timer was left.
        self.parked_until: datetime | None = None
        self.logger = logging.LoggerAdapter(log, log_extra("run_execution", self.id))

    def _await_people(self) -> None:
        if self.status == ExecutionStatus.IN_PROGRESS:
            self._set_status(ExecutionStatus.AWAITING_USER_INPUT)
            self.journal.event("execution.awaiting_input")
            self._tell_parent("child_waiting")

    def resume_status(self) -> None:
        """Back to InProgress when something happens while the execution awaited input."""
        if self.status == ExecutionStatus.AWAITING_USER_INPUT:
            self._set_status(ExecutionStatus.IN_PROGRESS)
            self.journal.event("execution.resumed")

    def _tell_parent(self, kind: str) -> None:
        if self.parent_id is not None:
            self.journal.signal(
                self.parent_id, kind, {"childId": self.id, "status": str(self.status)}
            )

    def add_timer(self, when: datetime, kind: str, run: StepRun) -> None:
        heapq.heappush(self.timers, (when, next(self._timer_seq), kind, run))

    # -- execution outcomes -------------------------------------------------------------------

    def _complete_execution(self) -> None:
        self.resume_status()  # whatever ended the last wait, completing is from InProgress
        output = None
        if self.workflow.output is not None:
            try:
                output = self.workflow.output.render(self._context(self.root))
            except TemplateError as exc:
                self._fail_execution({"message": f"output: {exc.message}"})
                return
        now = self.clock.now()
        status = (
            ExecutionStatus.COMPLETED_NO_ACTION if self.no_action else ExecutionStatus.COMPLETED
        )
        self._set_status(status, completed_at=now, output=self.codec.dumps(output))
        self.journal.event("execution.completed", None, {"status": str(status)}, at=now)
        self._tell_parent("child_done")

    def _fail_execution(self, error: dict[str, Any]) -> None:
        if self.status.terminal:
            return
        now = self.clock.now()
        self._cancel_everything("the execution failed")
        self._set_status(ExecutionStatus.FAILED, failed_at=now, error=self.codec.dumps(error))
        self.journal.event("execution.failed", None, {"error": error.get("message")}, at=now)
        self._tell_parent("child_done")

    def cancel_execution(self, reason: str, *, by: str) -> None:
        """Stop everything (running handlers see cancellation; children are cancelled too)."""
        if self.status.terminal:
            return
        now = self.clock.now()
        self._cancel_everything("the execution was cancelled")
        error = {"message": f"cancelled: {reason}", "cancelledBy": by}
        self._set_status(ExecutionStatus.CANCELLED, completed_at=now, error=self.codec.dumps(error))
        self.journal.event("execution.cancelled", None, {"reason": reason, "by": by}, at=now)
        self._tell_parent("child_done")

    def _cancel_everything(self, reason: str) -> None:
        scopes = [self.root, *self.loops.active_scopes()]
        for scope in scopes:
            for run in list(scope.runs.values()):
                self.cancel_run(run, reason)
            scope.closed = True
        self.timers = []
        self.to_launch = []
        self.ready.clear()

    def cancel_run(self, run: StepRun, reason: str) -> None:
        if run.terminal:
            return
        self._cancel_task_of(run)
        self.inputs.forget(run)
        if self.children.is_waiting(run):
            self.children.cancel_children(run, reason)
        run.status = StepStatus.CANCELLED
        run.failed_at = self.clock.now()
        run.error = {"message": reason, "stepId": run.step.id, "attempt": run.attempt}
        self.journal.touch(run)
        self.journal.event("step.cancelled", run, {"reason": reason})

    def _cancel_task_of(self, run: StepRun) -> None:
        for task, owner in list(self.tasks.items()):
            if owner is run:
                task.cancel()
                del self.tasks[task]

    def _set_status(self, status: ExecutionStatus, **columns: Any) -> None:
        if status not in ALLOWED_MOVES[self.status]:
            raise FlowledgerError(  # a scheduler bug, never a user's doing: stop before writing
                f"execution {self.id} cannot move from {self.status} to {status}"
            )
        self.status = status
        self.journal.set_execution(runtime_status=str(status), **columns)

    def _step_context(self, run: StepRun) -> StepContext:
        assert run.started_at is not None
        return StepContext(
            execution_id=self.id,
            step_id=run.step.id,
            step_execution_id=run.id,
            attempt=run.attempt,
            idempotency_key=run.idempotency_key,
            loop=run.scope.loop_indexes,
            started_at=run.started_at,
            http=self.services.http,
            logger=logging.LoggerAdapter(
                log, log_extra("run_step", self.id, run.step.id, attempt=run.attempt)
            ),
            variables=self.variables,
            definition_input=run.step.spec.input,
            depth=self.depth,
            entities=self._entities(),
            artifacts=self._artifacts(run),
        )

    def _entities(self) -> EntityAccess | None:
        bind = self.services.entities_for
        return bind(self.id, self.depth) if bind else None

    def _artifacts(self, run: StepRun) -> ArtifactAccess | None:
        bind = self.services.artifacts_for
        return bind(self.id, run.id, run.step.id) if bind else None

    # -- templates ----------------------------------------------------------------------------

    def _context(self, scope: Scope) -> dict[str, Any]:
        return template_context(
            scope,
            self.workflow,
            trigger=self.trigger,
            variables=self.variables.values,
            context=self.context,
            execution=self.info,
            secrets=self.secrets,
            read_artifact=self.services.read_artifact,
        )
