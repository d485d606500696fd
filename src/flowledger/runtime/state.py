"""In-memory state of one running execution; the database holds the truth, this mirrors it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowledger.definition.compiled import CompiledGraph, CompiledStep
from flowledger.runtime.attempts import AttemptVariables
from flowledger.runtime.status import StepStatus
from flowledger.runtime.steplogs import StepLogBuffer
from flowledger.templates import Template
from flowledger.timeutil import iso

TERMINAL_STEP = frozenset(
    {StepStatus.COMPLETED, StepStatus.DISABLED, StepStatus.FAILED, StepStatus.CANCELLED}
)


@dataclass(eq=False, slots=True)
class StepExecution:
    """One attempt of one step in one scope: a row of ``step_executions``."""

    id: str
    step: CompiledStep
    scope: Scope
    attempt: int
    status: StepStatus
    seq: int
    idempotency_key: str
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    due_at: datetime | None = None
    wake_at: datetime | None = None
    suspended: bool = False
    input: Any = None
    #: What is stored instead of ``input`` when it holds secrets (their placeholders).
    stored_input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    #: ``output`` as JSON when the offload check already serialized it (the commit reuses it).
    output_json: str | None = None
    #: Ids of the child executions a sys.sub_workflow step started.
    children: list[str] | None = None
    persisted: bool = False
    #: The stored row already has this input (it only changes when an attempt starts).
    input_stored: bool = False
    #: What the handler logged that is not written yet (created on the first context).
    logs: StepLogBuffer | None = None
    #: The attempt's ``ctx.variables`` changes, applied when it succeeds or parks.
    variable_changes: AttemptVariables | None = None
    #: The input model checked at activation, for the handler's first call (which then
    #: need not validate the same input again); a resumed or recovered call validates.
    validated: Any = None
    _envelope: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STEP

    @property
    def resolved_ok(self) -> bool:
        """Counts as done-and-good for successors: completed, or failed but allowed to."""
        return self.status == StepStatus.COMPLETED or (
            self.status == StepStatus.FAILED and self.step.spec.continue_on_error
        )

    def envelope(self) -> dict[str, Any]:
        """What ``steps.<id>`` shows a template (SPEC §3); cached once the step is final."""
        if self._envelope is not None:
            return self._envelope
        duration = None
        end = self.completed_at or self.failed_at
        if self.started_at and end:
            duration = int((end - self.started_at).total_seconds() * 1000)
        env = {
            "nodeId": self.step.id,
            "nodeName": self.step.name,
            "status": str(self.status),
            "output": self.output,
            "outputData": self.output,
            "executedAt": iso(self.started_at) if self.started_at else None,
            "durationMs": duration,
            "error": self.error,
            "attempt": self.attempt,
        }
        if self.terminal:
            self._envelope = env
        return env

    def forget_envelope(self) -> None:
        self._envelope = None


@dataclass(eq=False, slots=True)
class LoopState:
    """A running ``sys.loop`` step: its items (or its ``until``) and the iterations in
    flight."""

    run: StepExecution
    #: None for a loop with ``until``: it has no items.
    items: list[Any] | None
    concurrency: int
    next_index: int = 0
    active: dict[int, Scope] = field(default_factory=dict)
    results: list[dict[str, Any] | None] = field(default_factory=list)
    done: int = 0
    failed: bool = False
    #: ``until``, rendered when an iteration ends (None: a loop over items).
    until: Template | None = None
    #: ``max_iterations`` of a loop with ``until`` (0 for a loop over items).
    max_iterations: int = 0
    #: The index whose start ``max_iterations`` forbids: this attempt's first index plus
    #: ``max_iterations`` (a retry is given as many again).
    limit: int = 0
    #: A restored last iteration that had ended: ``until`` is rendered on it once every
    #: scope is rebuilt (LoopDriver.restored).
    ended: Scope | None = None


@dataclass(eq=False, slots=True)
class Scope:
    """One run of a graph: the workflow's top graph, or one iteration of a loop body."""

    key: str
    graph: CompiledGraph
    parent: Scope | None
    #: ``loop.<id>`` frames visible here: every enclosing loop's current iteration.
    loops: dict[str, dict[str, Any]]
    owner: LoopState | None = None
    index: int = 0
    runs: dict[str, StepExecution] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0
    closed: bool = False
    #: Steps of a decided race (``join: first``) that had not started: disabled when
    #: their turn comes (None in nearly every scope).
    cut: set[str] | None = None

    def __post_init__(self) -> None:
        self.pending = {sid: len(s.predecessors) for sid, s in self.graph.steps.items()}
        self.unfinished = len(self.graph.steps)

    def cut_off(self, step_ids: Iterable[str]) -> None:
        """Steps a decided race cut: disabled when their turn comes (Activation)."""
        if self.cut is None:
            self.cut = set()
        self.cut.update(step_ids)

    def lookup(self, step_id: str) -> StepExecution | None:
        scope: Scope | None = self
        while scope is not None:
            run = scope.runs.get(step_id)
            if run is not None:
                return run
            scope = scope.parent
        return None

    @property
    def loop_indexes(self) -> dict[str, int]:
        if not self.loops:  # the top scope: every step of a workflow without loops
            return {}
        return {name: frame["index"] for name, frame in self.loops.items()}


def child_key(parent: Scope, loop_id: str, index: int) -> str:
    own = f"{loop_id}:{index}"
    return f"{parent.key}/{own}" if parent.key else own
