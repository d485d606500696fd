"""Read models for people looking at executions (the web UI; any face may offer them):

- :meth:`Views.status_counts`: how many executions are in each status;
- :meth:`Views.execution`: one execution as a person debugging it wants to see it — the
  definition's graph coloured by status (loops as groups with ``done/total``, branches
  taken or not, sub-workflow children), a timeline of every attempt, each attempt's
  rendered input beside its templates, output, error, duration and idempotency key, the
  data store, the waiting inputs, and for every step which outputs a rerun from it reuses.

The rules (which step execution stands for a step, what a rerun reuses) are the
runtime's; this only arranges what the store holds.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, cast

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app import timeline
from flowledger.app.models import Id, Request
from flowledger.app.pending import PendingSignal, document_of
from flowledger.app.timeline import TimelineBar
from flowledger.definition.compiled import CompiledGraph, CompiledStep, CompiledWorkflow
from flowledger.definition.graph import ancestors
from flowledger.errors import NotFoundError
from flowledger.runtime.engine import Engine
from flowledger.runtime.status import ExecutionStatus
from flowledger.types import EventDocument, ExecutionDocument, StepDocument

#: When steps of one id ran several times (loop iterations), the status the graph shows
#: is the first of these that any of them has: trouble first, then work in flight.
STATUS_PRIORITY = ("Failed", "InProgress", "Cancelled", "Completed", "NotStarted", "Disabled")
TERMINAL_STEP = frozenset({"Completed", "Failed", "Disabled", "Cancelled"})
#: Iterations of a loop whose body attempts are listed when none is chosen; attempts that
#: did not complete (failed, running, cancelled) are listed whatever their iteration.
#: Keeps a 1,000-item loop's page small: pick an iteration to see any other.
SHOWN_ITERATIONS = 20
#: Ended attempts listed (with their timeline bars and data store entries) after that:
#: the latest. Keeps the page of a long graph small too (a 3,000-step chain's was 7 MB,
#: 2 s to render, re-sent on each live change): name a step to see its attempts.
SHOWN_ATTEMPTS = 100


class CountByStatus(Request):
    workflow: str | None = None


class GetExecutionView(Request):
    id: str = Id
    #: The loop iteration to show per loop id (body steps of other iterations hidden).
    iterations: dict[str, int] = Field(default_factory=dict)
    #: List only this step's attempts (None: every step's, the latest SHOWN_ATTEMPTS).
    step: str | None = Field(default=None, max_length=128)


class RerunReuse(Request):
    """What a rerun of the execution from ``from_step`` would reuse."""

    id: str = Id
    from_step: str = Field(min_length=1, max_length=128)


class DefinitionGraph(Request):
    """The graph of one stored version of a workflow (nothing run yet)."""

    name: str = Field(min_length=1, max_length=128)
    version: int | None = Field(default=None, ge=1)


class GraphNode(TypedDict):
    id: str
    label: str
    type: str
    status: str
    #: The loop whose body holds this step (None: the top graph).
    parent: str | None
    isLoop: bool
    done: int | None
    total: int | None
    children: list[str]
    stepExecutionId: str | None


class GraphEdge(TypedDict):
    source: str
    target: str
    #: ``then``/``else`` for a branch of a condition, ``body`` into a loop's body.
    label: str | None
    #: ``taken``, ``skipped`` (the target was disabled) or ``pending``.
    state: str


class TemplateValue(TypedDict):
    path: str
    template: str
    value: Any


class AttemptView(TypedDict):
    stepExecutionId: str
    stepId: str
    type: str
    label: str
    status: str
    attempt: int
    startedAt: str | None
    endedAt: str | None
    durationMs: int | None
    idempotencyKey: str | None
    input: Any
    output: Any
    error: Any
    templates: list[TemplateValue]
    children: list[str]
    loop: dict[str, int]


class ReuseView(TypedDict):
    """The steps whose outputs a rerun from ``fromStep`` reuses: the first
    ``MOST_NAMED_REUSED`` in the graph's order, and how many in all."""

    fromStep: str
    reused: list[str]
    count: int


#: A rerun's reused steps named in its hint; the others are counted.
MOST_NAMED_REUSED = 20


class ExecutionView(TypedDict):
    execution: ExecutionDocument
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    timeline: list[TimelineBar]
    timelineMs: int
    #: The event history, oldest first.
    events: list[EventDocument]
    attempts: list[AttemptView]
    #: The loops and their iteration counts (for the iteration selectors).
    loops: dict[str, int]
    iterations: dict[str, int]
    #: Body attempts left out of ``timeline`` and ``attempts`` (see SHOWN_ITERATIONS).
    hiddenAttempts: int
    #: Earlier ended attempts left out of them too (see SHOWN_ATTEMPTS).
    olderAttempts: int
    #: The step whose attempts alone are listed (None: every step's).
    step: str | None
    #: Steps whose entries are left out of ``dataStore["steps"]`` (those of attempts not
    #: listed, when there are more than SHOWN_ATTEMPTS); the console reads them all.
    hiddenStoreSteps: int
    #: The steps a rerun may start from (top-graph steps only), in the graph's order.
    rerun: list[str]
    #: What a rerun from the step the form offers first reuses (others: rerun_reuse). Not
    #: every step's: a chain of n steps made that n²/2 ids on the page.
    rerunReuse: ReuseView | None
    dataStore: dict[str, Any]
    #: The cancels and inputs it was sent and has not taken yet (waiting for a worker).
    signals: list[PendingSignal]


class Views:
    """The read models of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def status_counts(self, request: CountByStatus) -> dict[str, int]:
        """Every execution status (in SPEC order) → how many executions have it."""
        found = await self._engine.store.count_by_status(request.workflow)
        return {status.value: found.get(status.value, 0) for status in ExecutionStatus}

    async def definition_graph(
        self, request: DefinitionGraph
    ) -> tuple[builtins.list[GraphNode], builtins.list[GraphEdge]]:
        """Nodes and edges of a workflow version (its live one, else its newest)."""
        chosen = await self._engine.resolve_version(request.name, request.version)
        workflow = await self._engine.workflow_to_read(chosen.id)  # drawn, never run
        return _graph(workflow, [], {}, {})

    async def rerun_reuse(self, request: RerunReuse) -> ReuseView:
        """What a rerun from ``from_step`` reuses (NotFoundError: no such top-graph step)."""
        doc = cast(ExecutionDocument, await self._engine.get_execution(request.id))
        workflow = await self._engine.workflow_to_read(doc["workflowTemplateVersionId"])
        if request.from_step not in workflow.graph.steps:
            raise NotFoundError(
                f"execution {request.id} has no step {request.from_step!r} to rerun from"
            )
        return _reuse(workflow, request.from_step)

    async def execution(self, request: GetExecutionView) -> ExecutionView:
        engine = self._engine
        found = await engine.store.read_execution(request.id)
        if found is None:
            raise NotFoundError(f"execution {request.id} does not exist")
        document, signals = await document_of(engine, *found)  # as the API reads it
        doc = cast(ExecutionDocument, document)
        workflow = await engine.workflow_to_read(doc["workflowTemplateVersionId"])
        keys = {
            str(row["id"]): str(row["idempotency_key"])
            for row in await engine.store.get_step_executions(request.id)
        }
        runs = sorted(doc["steps"].values(), key=_run_order)
        chosen = {
            k: v
            for k, v in request.iterations.items()
            if k in workflow.steps and workflow.steps[k].body is not None
        }
        totals, loops = _loop_totals(workflow, runs, chosen)
        nodes, edges = _graph(workflow, runs, totals, chosen)
        step = request.step if request.step in workflow.steps else None
        listed = [
            run for run in runs if _listed(run, chosen) and (step is None or run["stepId"] == step)
        ]
        shown = _latest(listed)
        store = data_store(doc, workflow, chosen)
        hidden_store = _trim_store(store, shown)
        events = cast(builtins.list[EventDocument], await engine.events(request.id))
        now = engine.clock.now()  # an execution not over is drawn up to now
        bars, span = timeline.bars(doc, shown, timeline.waits(events), now)
        return {
            "execution": doc,
            "nodes": nodes,
            "edges": edges,
            "timeline": bars,
            "events": events,
            "timelineMs": span,
            "attempts": [_attempt(workflow, run, keys.get(run["id"])) for run in shown],
            "hiddenAttempts": len(runs) - len(listed) if step is None else 0,
            "olderAttempts": len(listed) - len(shown),
            "step": step,
            "hiddenStoreSteps": hidden_store,
            "loops": loops,
            "iterations": chosen,
            "rerun": list(workflow.graph.steps),
            "rerunReuse": _reuse(workflow, first)
            if (first := rerun_first(workflow, doc))
            else None,
            "dataStore": store,
            "signals": signals,
        }


def rerun_first(workflow: CompiledWorkflow, doc: ExecutionDocument) -> str | None:
    """The step a rerun form offers first: where the execution stopped, else its first."""
    current = doc["currentStateName"]
    if current in workflow.graph.steps:
        return current
    return next(iter(workflow.graph.steps), None)


def _reuse(workflow: CompiledWorkflow, from_step: str) -> ReuseView:
    found = ancestors(from_step, _predecessors(workflow.graph))
    ordered = [sid for sid in workflow.graph.steps if sid in found]
    return {"fromStep": from_step, "reused": ordered[:MOST_NAMED_REUSED], "count": len(ordered)}


def data_store(
    doc: ExecutionDocument, workflow: CompiledWorkflow, iterations: Mapping[str, int]
) -> dict[str, Any]:
    """The execution's data store as plain JSON (SPEC §3): what templates read, with each
    step's latest output (for a loop body step: of the chosen iteration, else the last)
    and the loop contexts of the chosen iterations (their ``previous`` as a run sets it).
    Secrets are never part of it."""
    trigger = doc["trigger"] or {}
    arguments = trigger.get("arguments", trigger.get("body"))
    steps: dict[str, Any] = {}
    for run in sorted(doc["steps"].values(), key=_run_order):
        loop = run.get("loop") or {}
        if any(iterations.get(k, i) != i for k, i in loop.items()):
            continue
        steps[run["stepId"]] = {
            "nodeId": run["stepId"],
            "status": run["status"],
            "output": run["outputData"],
            "outputData": run["outputData"],
            "executedAt": run["startedAt"],
            "durationMs": _duration(run["startedAt"], _end(run)),
            "error": run["error"],
            "attempt": run["attempt"],
        }
    loop_contexts: dict[str, Any] = {}
    for loop_id, index in iterations.items():
        given = _loop_input(doc, loop_id)
        items = given.get("items")
        if isinstance(items, list) and not 0 <= index < len(items):
            continue
        if not isinstance(items, list) and given.get("until") is None:
            continue
        # As runtime.loops sets it: none where iterations run side by side.
        sequential = given.get("until") is not None or given.get("concurrency", 1) == 1
        previous = None
        if index > 0 and sequential:
            body = workflow.steps[loop_id].body if loop_id in workflow.steps else None
            previous = _outputs_of(doc, body, loop_id, index - 1, iterations)
        loop_contexts[loop_id] = {
            "loopName": loop_id,
            "items": items if isinstance(items, list) else None,
            "index": index,
            "item": items[index] if isinstance(items, list) else None,
            "previous": previous,
        }
    return {
        "trigger": trigger,
        "input": arguments if arguments is not None else {},
        "steps": steps,
        "variables": doc["variables"] or {},
        "loop": loop_contexts,
        "context": doc["context"] or {},
        "execution": {
            "id": doc["id"],
            "correlationId": doc["correlationId"],
            "workflowName": doc["workflowName"],
            "workflowVersion": doc["workflowVersion"],
            "startedAt": doc["startedAt"],
        },
    }


def iteration_counts(
    doc: ExecutionDocument, workflow: CompiledWorkflow, chosen: Mapping[str, int]
) -> dict[str, int]:
    """Loop id → how many iterations one can choose of it, in the ``chosen`` iterations
    of the loops around it (the most of any, where those are not chosen)."""
    runs = sorted(doc["steps"].values(), key=_run_order)
    return _loop_totals(workflow, runs, chosen)[1]


def _listed(run: StepDocument, chosen: Mapping[str, int]) -> bool:
    """Whether an attempt is listed: outside loops, of the chosen iterations, of the first
    SHOWN_ITERATIONS when none is chosen, or not completed."""
    loop = run.get("loop") or {}
    if not loop or run["status"] not in ("Completed", "Disabled"):
        return True
    return all(chosen[k] == i if k in chosen else i < SHOWN_ITERATIONS for k, i in loop.items())


def _latest(runs: builtins.list[StepDocument]) -> builtins.list[StepDocument]:
    """``runs`` (in run order) less all but the latest SHOWN_ATTEMPTS completed (or
    disabled) ones: those running, waiting, failed or cancelled stay, however many."""
    ended = [i for i, run in enumerate(runs) if run["status"] in ("Completed", "Disabled")]
    if len(ended) <= SHOWN_ATTEMPTS:
        return runs
    dropped = set(ended[: len(ended) - SHOWN_ATTEMPTS])
    return [run for i, run in enumerate(runs) if i not in dropped]


def _trim_store(store: dict[str, Any], shown: builtins.list[StepDocument]) -> int:
    """Past SHOWN_ATTEMPTS step entries, keep in ``store["steps"]`` those of the attempts
    ``shown``; how many were left out."""
    steps: dict[str, Any] = store["steps"]
    if len(steps) <= SHOWN_ATTEMPTS:
        return 0
    keep = {run["stepId"] for run in shown}
    store["steps"] = {sid: entry for sid, entry in steps.items() if sid in keep}
    return len(steps) - len(store["steps"])


def _loop_input(doc: ExecutionDocument, loop_id: str) -> dict[str, Any]:
    """The input of a loop step's latest attempt (its items, or its until)."""
    found: dict[str, Any] = {}
    for run in sorted(doc["steps"].values(), key=_run_order):
        if run["stepId"] == loop_id and isinstance(run.get("inputData"), dict):
            found = cast(dict[str, Any], run["inputData"])
    return found


def _outputs_of(
    doc: ExecutionDocument,
    body: CompiledGraph | None,
    loop_id: str,
    index: int,
    iterations: Mapping[str, int],
) -> dict[str, Any] | None:
    """``loop.<id>.previous`` as the runtime sets it: body step id → its output in
    iteration ``index`` of the loop (in the chosen iterations of the loops around it)."""
    if body is None:
        return None
    outputs: dict[str, Any] = {}
    for run in sorted(doc["steps"].values(), key=_run_order):
        loop = run.get("loop") or {}
        if run["stepId"] not in body.steps or loop.get(loop_id) != index:
            continue
        if any(iterations.get(k, i) != i for k, i in loop.items() if k != loop_id):
            continue
        done = run["status"] == "Completed"
        outputs[run["stepId"]] = run["outputData"] if done else None
    return outputs


def _run_order(run: StepDocument) -> tuple[bool, str, int]:
    return (run["startedAt"] is None, run["startedAt"] or "", run["attempt"])


def _end(run: StepDocument) -> str | None:
    return run["completedAt"] or run["failedAt"]


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _duration(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    return int((_parse(end) - _parse(start)).total_seconds() * 1000)


def _predecessors(graph: CompiledGraph) -> dict[str, builtins.list[str]]:
    return {sid: list(step.predecessors) for sid, step in graph.steps.items()}


def _loop_totals(
    workflow: CompiledWorkflow,
    runs: builtins.list[StepDocument],
    chosen: Mapping[str, int] | None = None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Loop id → how many items it iterates: its latest run's, summed over the runs of
    a nested loop (one per iteration of the loops around it) that the ``chosen``
    iterations select; and loop id → the most items one of those runs iterates (the
    indexes one can choose). A loop with ``until`` has no items: until it ends, its
    count is of the iterations it started."""
    started = _iterations_started(workflow, runs)
    latest: dict[tuple[str, tuple[tuple[str, int], ...]], int] = {}
    for run in runs:  # oldest first: a later attempt replaces an earlier one
        step = workflow.steps.get(run["stepId"])
        if step is None or step.body is None or not _selected(run, chosen or {}):
            continue
        items = (run.get("inputData") or {}).get("items")
        output = run["outputData"]
        where = (step.id, tuple(sorted((run.get("loop") or {}).items())))
        if isinstance(items, list):
            latest[where] = len(items)
        elif isinstance(output, dict) and isinstance(output.get("count"), int):
            latest[where] = output["count"]
        elif where in started:
            latest[where] = started[where]
    totals: dict[str, int] = {}
    widest: dict[str, int] = {}
    for (loop_id, _), count in latest.items():
        totals[loop_id] = totals.get(loop_id, 0) + count
        widest[loop_id] = max(widest.get(loop_id, 0), count)
    return totals, widest


def _iterations_started(
    workflow: CompiledWorkflow, runs: builtins.list[StepDocument]
) -> dict[tuple[str, tuple[tuple[str, int], ...]], int]:
    """(loop id, the indexes of the loops around it) → how many of its iterations have
    step executions."""
    started: dict[tuple[str, tuple[tuple[str, int], ...]], int] = {}
    for run in runs:
        indexes = run.get("loop") or {}
        for loop_id, index in indexes.items():
            step = workflow.steps.get(loop_id)
            if step is None:
                continue
            around = tuple(sorted((k, i) for k, i in indexes.items() if k in step.scope))
            started[(loop_id, around)] = max(started.get((loop_id, around), 0), index + 1)
    return started


def _selected(run: StepDocument, chosen: Mapping[str, int]) -> bool:
    """The run belongs to the chosen iteration of every loop around it."""
    return all(chosen.get(k, i) == i for k, i in (run.get("loop") or {}).items())


def _graph(
    workflow: CompiledWorkflow,
    runs: builtins.list[StepDocument],
    loops: dict[str, int],
    chosen: dict[str, int],
) -> tuple[builtins.list[GraphNode], builtins.list[GraphEdge]]:
    by_step: dict[str, builtins.list[StepDocument]] = {}
    for run in runs:
        if _selected(run, chosen):
            by_step.setdefault(run["stepId"], []).append(run)
    nodes: builtins.list[GraphNode] = []
    edges: builtins.list[GraphEdge] = []
    status: dict[str, str] = {}
    for step in workflow.steps.values():
        found = by_step.get(step.id, [])
        status[step.id] = _summary_status(found)
    for step in workflow.steps.values():
        found = by_step.get(step.id, [])
        done = None
        if step.body is not None:
            done = _iterations_done(step, runs, chosen)
        nodes.append(
            {
                "id": step.id,
                "label": step.name,
                "type": step.type_name,
                "status": status[step.id],
                "parent": step.scope[-1] if step.scope else None,
                "isLoop": step.body is not None,
                "done": done,
                "total": loops.get(step.id) if step.body is not None else None,
                "children": [c["id"] for run in found for c in run["childWorkflowExecutions"]],
                "stepExecutionId": found[-1]["id"] if found else None,
            }
        )
        for before in step.predecessors:
            label = None
            if step.branch is not None and step.branch.condition == before:
                label = "then" if step.branch.result else "else"
            edges.append(
                {
                    "source": before,
                    "target": step.id,
                    "label": label,
                    "state": _edge(status, step.id),
                }
            )
        if step.body is not None:
            for root in step.body.roots():
                edges.append(
                    {
                        "source": step.id,
                        "target": root.id,
                        "label": "body",
                        "state": _edge(status, root.id),
                    }
                )
    return nodes, edges


def _edge(status: dict[str, str], target: str) -> str:
    if status[target] == "Disabled":
        return "skipped"
    return "pending" if status[target] == "NotStarted" else "taken"


def _summary_status(runs: builtins.list[StepDocument]) -> str:
    if not runs:
        return "NotStarted"
    present = {run["status"] for run in runs}
    return next((s for s in STATUS_PRIORITY if s in present), runs[-1]["status"])


def _iterations_done(
    loop: CompiledStep, runs: builtins.list[StepDocument], chosen: Mapping[str, int]
) -> int:
    """Iterations of ``loop`` whose body steps have all ended: of every run of a nested
    loop the ``chosen`` iterations select (an iteration is its index with those of the
    loops around it)."""
    assert loop.body is not None
    around = (*loop.scope, loop.id)
    outside = {k: i for k, i in chosen.items() if k in loop.scope}  # not its own, nor inner
    state: dict[tuple[int, ...], bool] = {}
    for run in runs:
        indexes = run.get("loop") or {}
        if loop.id not in indexes or run["stepId"] not in loop.body.steps:
            continue
        if not _selected(run, outside):
            continue
        key = tuple(indexes.get(name, -1) for name in around)
        state[key] = state.get(key, True) and run["status"] in TERMINAL_STEP
    return sum(state.values())


def _attempt(workflow: CompiledWorkflow, run: StepDocument, key: str | None) -> AttemptView:
    step = workflow.steps.get(run["stepId"])
    templates = list(_templates(step.spec.input, run.get("inputData"), "input")) if step else []
    return {
        "stepExecutionId": run["id"],
        "stepId": run["stepId"],
        "type": run["type"],
        "label": timeline.label(run),
        "status": run["status"],
        "attempt": run["attempt"],
        "startedAt": run["startedAt"],
        "endedAt": _end(run),
        "durationMs": _duration(run["startedAt"], _end(run)),
        "idempotencyKey": key,
        "input": run.get("inputData"),
        "output": run["outputData"],
        "error": run["error"],
        "templates": templates,
        "children": [c["id"] for c in run["childWorkflowExecutions"]],
        "loop": dict(run.get("loop") or {}),
    }


_MISSING = object()


def _templates(source: Any, rendered: Any, path: str) -> Iterator[TemplateValue]:
    """Every template string in a step's definition input, with what it rendered to."""
    if isinstance(source, str):
        if "{{" in source:
            value = None if rendered is _MISSING else rendered
            yield {"path": path, "template": source, "value": value}
    elif isinstance(source, dict):
        for key, inner in source.items():
            below = rendered.get(key, _MISSING) if isinstance(rendered, dict) else _MISSING
            yield from _templates(inner, below, f"{path}.{key}")
    elif isinstance(source, list):
        for index, inner in enumerate(source):
            ok = isinstance(rendered, list) and index < len(rendered)
            yield from _templates(inner, rendered[index] if ok else _MISSING, f"{path}[{index}]")
