"""The small interfaces runtime helpers depend on, instead of the classes that own them.

The runner (:class:`~flowledger.runtime.runner.ExecutionRunner`) satisfies
:class:`Scheduler` and :class:`Recoverable`; the engine satisfies :class:`Control`.
Helpers name only these, so no helper imports its owner (not even for type checking)
and the package arrows stay one way.
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from flowledger.artifacts.service import ArtifactService
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.runtime.journal import Journal
from flowledger.runtime.services import Services
from flowledger.runtime.state import Scope, StepExecution
from flowledger.runtime.status import StepStatus
from flowledger.steps.base import StepContext, StepKind, Suspend
from flowledger.storage.base import Store, WorkflowVersion
from flowledger.timeutil import Clock

#: What a timer does when due: start a retry, wake a suspended step, or fail a late one.
TimerKind = Literal["retry", "wake", "due"]


class Scheduler(Protocol):
    """One execution's scheduler, as the drivers of its steps see it."""

    id: str
    services: Services
    clock: Clock
    journal: Journal
    #: Hops below the root execution (sub-workflows).
    depth: int
    root_id: str | None
    info: dict[str, Any]
    #: Steps recorded as started this round whose handler runs once the round is committed.
    to_launch: list[StepExecution]

    def open_scope(self, scope: Scope) -> None: ...

    def add_timer(self, when: datetime, kind: TimerKind, run: StepExecution) -> None: ...

    def resume_status(self) -> None: ...

    def another_wait(self) -> None: ...

    def run_inline(self, run: StepExecution, data: BaseModel) -> None: ...

    def suspend(
        self, run: StepExecution, suspend: Suspend, state: dict[str, Any] | None = None
    ) -> None: ...

    def wait_outside(self, run: StepExecution) -> None:
        """Recovery found ``run`` parked without a time: it waits for an input from
        outside again (runtime.waits), or resumes with the one that woke it."""
        ...

    def step_succeeded(self, run: StepExecution, result: Any) -> None: ...

    def step_failed(
        self,
        run: StepExecution,
        message: str,
        *,
        retryable: bool,
        details: Any = None,
        retry_after: timedelta | None = None,
        code: str = "step",
    ) -> None: ...

    def cancel_run(self, run: StepExecution, reason: str) -> None: ...

    def step_context(self, run: StepExecution) -> StepContext: ...

    def template(self, scope: Scope) -> dict[str, Any]:
        """The template context of ``scope`` (SPEC §3): what a step there reads."""
        ...


class Restoring(Protocol):
    """What recovery offers a driver that rebuilds a step's in-flight state from rows."""

    def started_indexes(self, run: StepExecution) -> list[int]:
        """Iterations of the loop step ``run`` that have rows, in order."""
        ...

    def restore_scope(self, scope: Scope) -> None:
        """Rebuild one scope (an iteration) from its rows, as recovery does the root."""
        ...


class Driver(Protocol):
    """How the scheduler runs the steps of one :class:`~flowledger.steps.base.StepKind`.

    The scheduler owns every transition (started, completed, failed, retried,
    cancelled); a driver fills the hooks where a kind differs. ``runtime/drivers.py``
    maps each kind to its driver; ``runtime/tasks.py`` has the defaults (``TASK``).
    """

    #: A retry of a failed execution resumes the step where it stopped (a loop keeps
    #: its finished iterations) instead of queueing a fresh attempt.
    resumes_on_retry: ClassVar[bool]
    #: The scheduler reads the output itself (a condition's result): never offloaded.
    keeps_output_inline: ClassVar[bool]
    #: One completed outside any loop ends the execution CompletedWithNoActionTaken.
    marks_no_action: ClassVar[bool]
    #: ``input`` reads the template context only to render ``step.input``: a constant
    #: input then needs none (the scheduler skips building it).
    renders_input_only: ClassVar[bool]

    def input(self, run: StepExecution, context: dict[str, Any]) -> BaseModel:
        """Render the step's input into ``run.input`` and return it validated (may raise
        TemplateError or ValidationError: the step fails)."""
        ...

    def start(self, run: StepExecution, data: BaseModel) -> None:
        """The attempt is recorded as started with valid input: set it going."""
        ...

    def invoke(self, run: StepExecution) -> Coroutine[Any, Any, Any]:
        """The work of a launched step, run as a task after the round's commit."""
        ...

    def task_done(self, run: StepExecution, result: Any) -> None:
        """The launched task returned ``result``."""
        ...

    def due(self, run: StepExecution) -> bool:
        """The step's due time passed; True when the driver settled the step itself."""
        ...

    def cancel(self, run: StepExecution, reason: str) -> None:
        """The step is being cancelled: let go of what it waits for."""
        ...

    def restore(self, run: StepExecution, restoring: Restoring) -> bool:
        """Recovery found the step in progress; True when it goes on (waiting, looping),
        False when its process died under it (recovery re-runs it)."""
        ...

    def restored(self) -> None:
        """Every scope is rebuilt and crashed steps re-run: move on what was restored."""
        ...


class AttemptMaker(Protocol):
    """Where a step's new attempt is made: the runner (a retry's, in runtime.outcomes, which
    holds it weakly; recovery's, in :class:`Recoverable`)."""

    def new_run(
        self,
        scope: Scope,
        step: CompiledStep,
        attempt: int,
        status: StepStatus,
        idempotency_key: str | None = None,
    ) -> StepExecution: ...


class Recoverable(AttemptMaker, Protocol):
    """A fresh runner, as recovery rebuilds it from the database."""

    root: Scope
    step_seq: Any
    clock: Clock
    journal: Journal
    services: Services

    def driver(self, kind: StepKind) -> Driver: ...

    def add_timer(self, when: datetime, kind: TimerKind, run: StepExecution) -> None: ...

    def queue(self, scope: Scope, step_id: str) -> None:
        """Make the step ready to activate in ``scope``."""
        ...

    def start_attempt(self, run: StepExecution) -> None: ...

    def fail_scope(self, scope: Scope, run: StepExecution) -> None: ...

    def scope_done(self, scope: Scope, last: StepExecution | None = None) -> None: ...


class Control(Protocol):
    """What control from outside (input, cancel, retry, rerun) needs of the engine."""

    owner: str
    lease: timedelta
    clock: Clock

    @property
    def store(self) -> Store: ...

    #: A rerun copies the artifacts of the steps it reuses.
    @property
    def artifacts(self) -> ArtifactService: ...

    async def workflow_for_version(self, version_id: str) -> CompiledWorkflow: ...

    async def resolve_workflow(
        self, name: str, version: int | None = None
    ) -> tuple[CompiledWorkflow, WorkflowVersion]: ...


__all__ = ["Control", "Driver", "Recoverable", "Restoring", "Scheduler", "TimerKind"]
