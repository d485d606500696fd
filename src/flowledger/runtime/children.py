"""``sys.sub_workflow``: child executions started in the parent's commit, awaited durably.

The step's life: its input is rendered (the child input once per item, with
``loop.<step id>`` set), then a task resolves the child workflow and checks every
child input (``prepare``); the next round creates the first ``concurrency``
children in the same commit that records the step as waiting (``spawn``). Each
child's final commit signals the parent; the parent reads the children's rows
(``refresh``), starts the next ones, and finishes the step when all are terminal
— or fails it, cancelling the rest, as soon as more fail than ``tolerated_failures``.

No child is created once its step has failed: the parent decides to start one from
rows it read earlier, and a sibling may fail before that decision is committed (it
did, ~3 runs in 20 of a fan-out whose children end together: the parent read a
sibling still running, then another one's end, and refilled the window). So each
round's new children go with a storage.base.ChildGuard: the commit creates them only
if the step's failed children are still within the tolerance, and the parent drops
the children it refused (the failure's signal then fails the step).

A retry (a later attempt of the step) does not run again a child of its earlier attempt
that completed the same workflow with the same input: it takes that child's result
(whatever version of the child workflow it ran: a fix pushed for the children that failed
leaves the finished ones be),
as a retried loop keeps its finished iterations, so a child's side effects happen once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from flowledger.codec import loads
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.errors import FlowledgerError, StepError
from flowledger.runtime.child_failures import FAILED, entry, failed_count, past_tolerance
from flowledger.runtime.creation import MAX_DEPTH, Lineage, execution_rows, validate_input
from flowledger.runtime.ports import Restoring, Scheduler
from flowledger.runtime.state import StepExecution
from flowledger.runtime.status import ExecutionStatus, StepStatus
from flowledger.runtime.tasks import TaskDriver
from flowledger.steps.subworkflow import CHILDREN_WAIT
from flowledger.steps.tolerance import parse_tolerance, tolerated_count
from flowledger.storage import Row, WorkflowVersion
from flowledger.storage.base import ChildGuard
from flowledger.templates import TemplatedValue

#: (name, version number or None for latest) → the workflow and its stored version.
WorkflowResolver = Callable[[str, int | None], Awaitable[tuple[CompiledWorkflow, WorkflowVersion]]]


@dataclass(frozen=True)
class Spawn:
    """What ``prepare`` found: the child workflow and one checked input per child."""

    workflow: CompiledWorkflow
    version: WorkflowVersion
    inputs: list[dict[str, Any]]
    concurrency: int
    #: Index → result of a child the step's earlier attempt completed (on a retry).
    reused: dict[int, dict[str, Any]]
    #: How many children may fail without failing the step.
    tolerated: int


class ChildWaits(TaskDriver):
    """The driver of ``StepKind.SUB_WORKFLOW`` steps (see the module docstring)."""

    renders_input_only = False  # each child's input renders with the loop frames

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__(scheduler)
        #: Waiting sub-workflow step runs by step execution id.
        self.runs: dict[str, StepExecution] = {}
        self._compiled: dict[str, tuple[TemplatedValue, TemplatedValue]] = {}
        self._workflows: dict[str, CompiledWorkflow] = {}
        #: Children created in rounds not yet reported to the engine (it may run them here).
        self.started: list[str] = []
        #: Children sent a cancel in rounds not yet reported (the engine tells them at once).
        self.cancelled: list[str] = []
        #: Every unfinished child is waiting for a person (known from the last refresh).
        self.blocked_on_people = False
        #: The children found AwaitingUserInput by the last refresh.
        self.asking: set[str] = set()
        #: Steps whose new children a commit not yet done creates, by step execution id.
        self._guarded: dict[str, StepExecution] = {}
        scheduler.journal.on_child_guard = self._guard_decided

    # -- driver hooks -------------------------------------------------------------------------

    def input(self, run: StepExecution, context: dict[str, Any]) -> BaseModel:
        run.input = self.render_input(run.step, context)
        data = {k: v for k, v in run.input.items() if k != "inputs"}
        return run.step.step_type.input_model.model_validate(data)

    def start(self, run: StepExecution, data: BaseModel) -> None:
        self.scheduler.to_launch.append(run)  # prepare() reads workflows: a task

    def invoke(self, run: StepExecution) -> Coroutine[Any, Any, Any]:
        return self.prepare(run)

    def task_done(self, run: StepExecution, result: Any) -> None:
        assert isinstance(result, Spawn)
        self.spawn(run, result)

    def due(self, run: StepExecution) -> bool:
        if self.is_waiting(run):
            self.cancel_children(run, "the sub-workflow step was due")
        return False  # the scheduler fails the step

    def cancel(self, run: StepExecution, reason: str) -> None:
        if self.is_waiting(run):
            self.cancel_children(run, reason)

    def restore(self, run: StepExecution, restoring: Restoring) -> bool:
        if run.suspended:
            self.runs[run.id] = run
        return run.suspended

    # -- input ----------------------------------------------------------------------------

    def render_input(self, step: CompiledStep, context: dict[str, Any]) -> dict[str, Any]:
        """The step input with ``inputs``: the child input rendered once per item."""
        raw = step.spec.input if isinstance(step.spec.input, dict) else {}
        compiled = self._compiled.get(step.path)
        if compiled is None:
            templates = self.scheduler.services.templates
            outer = {k: v for k, v in raw.items() if k != "input"}
            compiled = (templates.compile_value(outer), templates.compile_value(raw.get("input")))
            self._compiled[step.path] = compiled
        outer_value, child_input = compiled
        data = dict(outer_value.render(context))
        items = data.get("items")
        if items is None:
            data["inputs"] = [child_input.render(context)]
        elif isinstance(items, list):
            frames = context["loop"]
            data["inputs"] = []
            for index, item in enumerate(items):
                frame = {"loopName": step.id, "items": items, "index": index, "item": item}
                per_item = {**context, "loop": {**frames, step.id: frame}}
                data["inputs"].append(child_input.render(per_item))
        data["input"] = raw.get("input")
        return data

    async def prepare(self, run: StepExecution) -> Spawn:
        """Resolve the child workflow and check every child input (runs as the step's task)."""
        resolve = self.scheduler.services.resolve_workflow
        if resolve is None:
            raise StepError("this engine cannot start sub-workflows", retryable=False)
        data = run.input
        depth = self.scheduler.depth
        if depth + 1 > MAX_DEPTH:
            raise StepError(
                f"sub-workflow depth limit reached: this execution is {depth} levels "
                f"below its root, and children may go at most {MAX_DEPTH} deep (a workflow that "
                "starts itself without an end?)",
                retryable=False,
            )
        version = data.get("version")
        try:
            workflow, stored = await resolve(
                data["workflow"], version if isinstance(version, int) else None
            )
        except FlowledgerError as exc:
            raise StepError(str(exc), retryable=False) from None
        inputs = []
        for index, child_input in enumerate(data["inputs"]):
            if child_input is None:
                child_input = {}
            if not isinstance(child_input, dict):
                raise StepError(
                    f"the input of child {index} must be an object, not "
                    f"{type(child_input).__name__}",
                    retryable=False,
                )
            try:
                child_input = validate_input(workflow, child_input)
            except FlowledgerError as exc:
                raise StepError(f"child {index}: {exc}", retryable=False) from None
            inputs.append(child_input)
        reused = await self._completed_before(run, workflow, inputs) if run.attempt > 1 else {}
        await self._reserve(len(inputs) - len(reused))
        tolerated = tolerated_count(parse_tolerance(data.get("tolerated_failures")), len(inputs))
        concurrency = int(data.get("concurrency") or 10)
        return Spawn(workflow, stored, inputs, concurrency, reused, tolerated)

    async def _reserve(self, count: int) -> None:
        """Count ``count`` new children against the root's budget of descendants, or
        fail the step: the depth cap alone lets k children a level make k**10."""
        runner = self.scheduler
        if count <= 0:
            return
        root = runner.root_id or runner.id
        most = runner.services.max_descendants
        if await runner.services.store.reserve_descendants(root, count, most) is None:
            raise StepError(
                f"starting {count:,} more sub-workflow executions would take the executions "
                f"below root execution {root} past {most:,}, the most one root may start at "
                "every level below it (FLOWLEDGER_MAX_DESCENDANTS; a workflow that starts "
                "copies of itself?)",
                retryable=False,
            )

    async def _completed_before(
        self, run: StepExecution, workflow: CompiledWorkflow, inputs: list[dict[str, Any]]
    ) -> dict[int, dict[str, Any]]:
        """The children of the step's latest earlier attempt that started children which
        completed ``workflow`` with the same input, by index."""
        store = self.scheduler.services.store
        earlier = [
            row
            for row in await store.get_step_executions(self.scheduler.id)
            if row["step_id"] == run.step.id
            and row["loop_key"] == run.scope.key
            and row["attempt"] < run.attempt
            and row["children"]
        ]
        if not earlier:
            return {}
        previous = max(earlier, key=lambda row: int(row["attempt"]))
        before = (loads(previous["state"]) or {}).get("inputs") or []
        reused = {}
        for index, child_id in enumerate(loads(previous["children"]) or []):
            if index >= min(len(inputs), len(before)) or before[index] != inputs[index]:
                continue
            row = await store.get_execution(child_id)
            if row is None or row["workflow_name"] != workflow.name:
                continue
            if ExecutionStatus(row["runtime_status"]) in _DONE:
                reused[index] = _result(row)
        return reused

    # -- waiting --------------------------------------------------------------------------

    def spawn(self, run: StepExecution, spawn: Spawn) -> None:
        self._workflows[spawn.version.id] = spawn.workflow
        run.suspended = True
        run.children = []
        run.state = {
            "wait": CHILDREN_WAIT,
            "versionId": spawn.version.id,
            "inputs": spawn.inputs,
            "concurrency": spawn.concurrency,
            "tolerated": spawn.tolerated,
            "results": {result["id"]: result for result in spawn.reused.values()},
            "reused": {str(index): result["id"] for index, result in spawn.reused.items()},
        }
        self.runs[run.id] = run
        self.blocked_on_people = False  # new children run: nobody knows they will wait
        self.scheduler.journal.event(
            "step.children_planned",
            run,
            {
                "workflow": spawn.workflow.name,
                "version": spawn.version.version,
                "count": len(spawn.inputs),
                "reused": len(spawn.reused),
            },
        )
        self._start_more(run, spawn.workflow, spawn.version)
        if len(run.state["results"]) == len(spawn.inputs):  # none, or all reused
            self._finish(run)

    @property
    def waiting(self) -> bool:
        return bool(self.runs)

    def _start_more(
        self, run: StepExecution, workflow: CompiledWorkflow, version: WorkflowVersion
    ) -> None:
        state = run.state or {}
        children = run.children if run.children is not None else []
        results: dict[str, Any] = state["results"]
        # Children started and not yet ended. Not len(children) - len(results): a retry's
        # results hold the reused children from the start, also those the list has not
        # reached yet, and that count let the first spawn start that many children more.
        active = sum(1 for child_id in children if child_id not in results)
        inputs = state["inputs"]
        reused: dict[str, str] = state.get("reused") or {}
        runner = self.scheduler
        created: list[str] = []
        while len(children) < len(inputs):
            index = len(children)
            if str(index) in reused:  # completed by an earlier attempt: its result stands
                children.append(reused[str(index)])
                continue
            if active >= state["concurrency"]:
                break
            row, event = execution_rows(
                workflow,
                version,
                trigger={
                    "type": "subWorkflow",
                    "arguments": inputs[index],
                    "parentWorkflowExecutionId": runner.id,
                    "index": index,
                },
                now=runner.clock.now(),
                created_by=f"execution:{runner.id}",
                correlation_id=runner.info["correlationId"],
                lineage=Lineage(
                    parent_id=runner.id,
                    root_id=runner.root_id or runner.id,
                    depth=runner.depth + 1,
                    trigger_key=f"child:{run.id}:{index}",
                ),
                codec=runner.journal.codec,  # the parent writes it: redacted as the parent
            )
            runner.journal.create_execution(row, event)
            children.append(row["id"])
            created.append(row["id"])
            active += 1
        if created:
            self.started.extend(created)
            # Refused, the list ends before the first of them (an index is a position).
            kept = children[: children.index(created[0])]
            fresh = set(created)
            guard = ChildGuard(
                known_failed=failed_count(results),
                running=[c for c in children if c not in results and c not in fresh],
                tolerated=state.get("tolerated", 0),
                child_ids=created,
                step_execution_id=run.id,
                children_if_refused=runner.journal.codec.dumps(kept) if kept else None,
            )
            runner.journal.guard_children(guard)
            self._guarded[run.id] = run
        run.children = children
        runner.journal.touch(run)

    def _guard_decided(self, guard: ChildGuard) -> None:
        """After the commit: children it refused (a sibling's failure came first) were
        never created, nor listed on the step's row, so they leave its list here too and
        are not run; the failure's signal, committed before, fails the step."""
        run = self._guarded.pop(guard.step_execution_id, None)
        children = (run.children if run is not None else None) or []
        if not guard.refused or run is None or guard.child_ids[0] not in children:
            return
        refused = set(guard.child_ids)
        run.children = children[: children.index(guard.child_ids[0])]
        self.started = [child for child in self.started if child not in refused]

    async def refresh(self) -> None:
        """Read the children's rows and move every waiting step on (after a child signal)."""
        blocked = True
        self.asking = set()
        for run in list(self.runs.values()):
            # A step that finished here no longer waits: only the steps still waiting say
            # whether people block the execution. Counting a finished one as "not blocked"
            # left a loop whose other iterations' children wait for people InProgress for
            # ever, with no signal left to refresh it again.
            if not await self._refresh_one(run) and run.id in self.runs:
                blocked = False
        self.blocked_on_people = blocked and bool(self.runs)

    async def _refresh_one(self, run: StepExecution) -> bool:
        """Returns whether every unfinished child of the step waits for a person."""
        state = run.state or {}
        results: dict[str, Any] = state.setdefault("results", {})
        store = self.scheduler.services.store
        blocked = True
        failed = failed_count(results)  # counted on as children end: once per refresh
        for child_id in run.children or []:
            if child_id in results:
                continue
            row = await store.get_execution(child_id)
            if row is None:
                # Created in a round not committed yet (a signal refreshed the steps while
                # another iteration's step spawned it): it has not run, so nobody knows
                # it will wait for a person. Counted as blocked, it parked `run` as
                # AwaitingUserInput with every child running or done.
                blocked = False
                continue
            status = ExecutionStatus(row["runtime_status"])
            if not status.terminal:
                if status == ExecutionStatus.AWAITING_USER_INPUT:
                    self.asking.add(child_id)
                else:
                    blocked = False
                continue
            results[child_id] = _result(row)
            self.scheduler.journal.touch(run)
            if status in FAILED:
                failed += 1
                if failed > state.get("tolerated", 0):
                    self._child_failed(run, child_id)
                    return False
        if run.id not in self.runs:
            return False
        if len(results) == len(state["inputs"]):
            self._finish(run)
            return False
        version_id = state["versionId"]
        workflow = self._workflows.get(version_id)
        if workflow is None:
            workflow = await self.scheduler.services.workflow_for_version(version_id)
            self._workflows[version_id] = workflow
        version = await store.get_workflow_version(version_id)
        assert version is not None
        before = len(run.children or [])
        self._start_more(run, workflow, version)
        if len(results) == len(state["inputs"]):  # the rest were reused
            self._finish(run)
            return False
        return blocked and len(run.children or []) == before

    def _finish(self, run: StepExecution) -> None:
        state = run.state or {}
        results = state.get("results", {})
        self.runs.pop(run.id, None)
        executions = [entry(results[c]) for c in run.children or []]
        output = {"executions": executions, "failedCount": failed_count(results)}
        self.scheduler.step_succeeded(run, output)

    def _child_failed(self, run: StepExecution, child_id: str) -> None:
        """Fail the step: ``child_id`` failed past the tolerance."""
        self.runs.pop(run.id, None)
        self.cancel_children(run, f"sibling child execution {child_id} failed")
        state = run.state or {}
        children, tolerated = run.children or [], state.get("tolerated", 0)
        failure = past_tolerance(
            child_id, children, state["results"], tolerated, len(state["inputs"])
        )
        self.scheduler.step_failed(
            run, failure.message, retryable=False, details=failure.details, code="child.failed"
        )

    def cancel_children(self, run: StepExecution, reason: str) -> None:
        """Ask every unfinished child to cancel (they may be anywhere: signals reach them)."""
        self.runs.pop(run.id, None)
        results = (run.state or {}).get("results", {})
        for child_id in run.children or []:
            if child_id not in results:
                self.scheduler.journal.signal(child_id, "cancel", {"reason": reason})
                self.cancelled.append(child_id)

    def forget(self, run: StepExecution) -> None:
        self.runs.pop(run.id, None)

    def is_waiting(self, run: StepExecution) -> bool:
        return run.id in self.runs and run.status == StepStatus.IN_PROGRESS


#: A child whose result a retry may take instead of running it again.
_DONE = (ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED_NO_ACTION)


def _result(row: Row) -> dict[str, Any]:
    """What the step keeps of a terminal child (its output and error as stored)."""
    return {
        "id": row["id"],
        "runtimeStatus": row["runtime_status"],
        "output": loads(row["output"]),
        "error": loads(row["error"]),
    }
