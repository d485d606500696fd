"""Read models for people looking at executions (the web UI; any face may offer them),
behind one facade, :class:`Views`:

- :meth:`Views.execution`: one execution as a person debugging it wants to see it — the
  definition's graph coloured by status (app.graph_view), a timeline of every attempt
  (app.timeline), each attempt's rendered input beside its templates
  (app.template_values), output, error, duration and idempotency key, the data store
  (app.data_store; bounded: app.store_tree), the waiting inputs, the children of each
  sub-workflow attempt with their statuses, how it ended (app.endings), and what a rerun
  from a step reuses (app.rerun_reuse). This module decides which attempts a page lists.
- :meth:`Views.artifacts`: its artifacts with a bounded preview of the small texts, JSON
  and images among them (app.artifact_previews).
- :meth:`Views.job_run`: a job run with the cancels its workflow has not taken yet.

The rules (which step execution stands for a step, what a rerun reuses) are the
runtime's; these only arrange what the store holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app import artifact_previews, timeline
from flowledger.app.artifact_previews import ArtifactPreviews, ArtifactView
from flowledger.app.artifacts import Artifacts
from flowledger.app.data_store import data_store
from flowledger.app.endings import (
    Cancellation,
    cancellation,
    error_children,
    failed_attempt,
    failed_children,
)
from flowledger.app.graph_view import DefinitionGraph, GraphEdge, GraphNode, graph
from flowledger.app.loop_counts import loop_totals
from flowledger.app.models import GetArtifact, GetJobRun, Id, Request
from flowledger.app.pending import PendingSignal, document_of, pending_signals, signals_waiting
from flowledger.app.rerun_reuse import RerunReuse, ReuseView, rerun_first, reuse
from flowledger.app.results import ArtifactDocument, JobRunDocument
from flowledger.app.step_runs import SHOWN_ATTEMPTS, run_duration, run_order
from flowledger.app.store_tree import TreeNode, store_tree
from flowledger.app.template_values import TemplateValue, step_templates
from flowledger.app.timeline import TimelineBar, TimelineBreak
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import NotFoundError
from flowledger.runtime.engine import Engine
from flowledger.runtime.job_runs import JobRuns
from flowledger.runtime.missing import missing_execution
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage.base import Row
from flowledger.types import EventDocument, ExecutionDocument, StepDocument

#: Iterations of a loop whose body attempts are listed when none is chosen; attempts that
#: did not complete (failed, running, cancelled) are listed whatever their iteration.
#: Keeps a 1,000-item loop's page small: pick an iteration to see any other.
SHOWN_ITERATIONS = 20
#: Children of one sub-workflow attempt listed with their statuses (those that did not
#: complete first); the others are counted by status.
SHOWN_CHILDREN = 20
#: Reads of a job run's page whose workflows keep ending between its two reads (each
#: re-read follows an execution's real end; the last read is shown as it is).
_JOB_RUN_READS = 3


class GetExecutionView(Request):
    id: str = Id
    #: The loop iteration to show per loop id (body steps of other iterations hidden).
    iterations: dict[str, int] = Field(default_factory=dict)
    #: List only this step's attempts (None: every step's, the latest SHOWN_ATTEMPTS).
    step: str | None = Field(default=None, max_length=128)


class ChildView(TypedDict):
    id: str
    status: str


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
    #: Its first SHOWN_CHILDREN children, those not Completed first, with their status.
    children: list[ChildView]
    #: How many children it started, per status (of them all).
    childCounts: dict[str, int]
    #: The child executions its error came from, outermost first (a failed child's own
    #: failed child, and so on).
    errorChildren: list[str]
    #: Why its retry policy did not try it again (its ``step.failed`` event's
    #: ``detail.notRetried``, as run, watch and events print it); None: not said.
    notRetried: str | None
    loop: dict[str, int]


class ExecutionView(TypedDict):
    execution: ExecutionDocument
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    timeline: list[TimelineBar]
    timelineMs: int
    #: Idle stretches drawn narrow in ``timeline`` (app.timeline.GAP_MS).
    timelineBreaks: list[TimelineBreak]
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
    #: ``dataStore`` as the page shows it: bounded, saying what it leaves out.
    storeTree: TreeNode
    #: Entries of the data store left out of ``storeTree`` (at every level).
    storeLeftOut: int
    #: The child executions the execution's failure came from, outermost first.
    errorChildren: list[str]
    #: The attempt of an ordinary step (a task) whose failure failed the execution: its
    #: step logs hold the traceback (None: not failed, or not by one).
    failedAttempt: str | None
    #: Who cancelled it, when and why (None: not cancelled).
    cancellation: Cancellation | None
    #: The cancels and inputs it was sent and has not taken yet (waiting for a worker).
    signals: list[PendingSignal]


class JobRunView(TypedDict):
    run: JobRunDocument
    #: It ended: nothing is left to cancel (a Failed one may still be retried).
    ended: bool
    #: The cancels sent to the workflow it is on that its execution has not taken yet
    #: (the page says it is being cancelled): it ends Cancelled once it does.
    cancels: list[PendingSignal]


def _took_since(before: Row, now: Row | None) -> bool:
    """The execution of ``before`` took signals, or changed status, by the read ``now``."""
    if now is None:
        return True
    taken = int(now.get("signals_taken") or 0) != int(before.get("signals_taken") or 0)
    return taken or now["runtime_status"] != before["runtime_status"]


class Views:
    """The read models of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine, artifacts: Artifacts) -> None:
        self._engine = engine
        self._artifacts = artifacts

    async def artifacts(self, request: ArtifactPreviews) -> list[ArtifactView]:
        """The execution's artifacts with their previews (artifact_previews.previews)."""
        return await artifact_previews.previews(self._artifacts, request)

    async def artifact_image(self, request: GetArtifact) -> tuple[ArtifactDocument, bytes]:
        """An artifact's bytes to draw on its execution's page
        (artifact_previews.preview_image)."""
        return await artifact_previews.preview_image(self._artifacts, request)

    async def definition_graph(
        self, request: DefinitionGraph
    ) -> tuple[list[GraphNode], list[GraphEdge]]:
        """Nodes and edges of a workflow version (its live one, else its newest)."""
        chosen = await self._engine.resolve_version(request.name, request.version)
        workflow = await self._engine.workflow_to_read(chosen.id)  # drawn, never run
        return graph(workflow, [], {}, {})

    async def rerun_reuse(self, request: RerunReuse) -> ReuseView:
        """What a rerun from ``from_step`` reuses (NotFoundError: no such top-graph step)."""
        doc = await self._engine.get_execution(request.id)
        workflow = await self._engine.workflow_to_read(doc["workflowTemplateVersionId"])
        if request.from_step not in workflow.graph.steps:
            raise NotFoundError(
                f"execution {request.id} has no step {request.from_step!r} to rerun from"
            )
        return reuse(workflow, request.from_step)

    async def job_run(self, request: GetJobRun) -> JobRunView:
        """A job run, and the cancels its unfinished workflow has not taken yet (a cancel
        from a page is recorded and left to the execution's holder or the workers).

        The job run's document, its workflows' rows and their signals are separate reads:
        an execution that took the cancel between two of them would leave a page saying
        neither "Cancelling" nor "Cancelled" and offering the cancel again, so all is read
        again when one did (a few times at most: each re-read follows a real change)."""
        engine = self._engine
        for reads_left in range(_JOB_RUN_READS - 1, -1, -1):
            run = cast(JobRunDocument, await JobRuns(engine).get(request.id))
            cancels: list[PendingSignal] = []
            moved = False
            for item in run["runs"]:
                status, execution_id = item["runtimeStatus"], item["executionId"]
                if execution_id is None or status is None or ExecutionStatus(status).terminal:
                    continue
                row = await engine.store.get_execution(execution_id)
                if row is None:
                    continue
                if row["runtime_status"] != status and reads_left:
                    moved = True
                    break
                signals = await pending_signals(engine, row)
                if (
                    signals_waiting(row)
                    and reads_left
                    and _took_since(row, await engine.store.get_execution(execution_id))
                ):
                    moved = True  # its runner took them between the two reads
                    break
                cancels += [signal for signal in signals if signal["kind"] == "cancel"]
            if not moved:
                break
        ended = ExecutionStatus(run["status"]).terminal
        return {"run": run, "ended": ended, "cancels": [] if ended else cancels}

    async def execution(self, request: GetExecutionView) -> ExecutionView:
        engine = self._engine
        found = await engine.store.read_execution(request.id)
        if found is None:
            raise await missing_execution(engine.store, request.id)
        document, signals = await document_of(engine, *found)  # as the API reads it
        doc = document
        workflow = await engine.workflow_to_read(doc["workflowTemplateVersionId"])
        keys = {
            str(row["id"]): str(row["idempotency_key"])
            for row in await engine.store.get_step_executions(request.id)
        }
        runs = sorted(doc["steps"].values(), key=run_order)
        chosen = {
            k: v
            for k, v in request.iterations.items()
            if k in workflow.steps and workflow.steps[k].body is not None
        }
        totals, loops = loop_totals(workflow, runs, chosen)
        has_children = any(run["childWorkflowExecutions"] for run in runs)
        statuses = await engine.store.child_statuses(request.id) if has_children else {}
        nodes, edges = graph(workflow, runs, totals, chosen, statuses)
        step = request.step if request.step in workflow.steps else None
        listed = [
            run for run in runs if _listed(run, chosen) and (step is None or run["stepId"] == step)
        ]
        shown = _latest(listed)
        store = data_store(doc, workflow, chosen)
        hidden_store = _trim_store(store, shown)
        tree, left_out = store_tree(store)
        events = await engine.events(request.id)
        now = engine.clock.now()  # an execution not over is drawn up to now
        bars, span, breaks = timeline.bars(doc, shown, timeline.waits(events), now)
        not_retried = _not_retried(events)
        return {
            "execution": doc,
            "nodes": nodes,
            "edges": edges,
            "timeline": bars,
            "events": events,
            "timelineMs": span,
            "timelineBreaks": breaks,
            "attempts": [
                _attempt(workflow, run, keys.get(run["id"]), statuses, not_retried) for run in shown
            ],
            "hiddenAttempts": len(runs) - len(listed) if step is None else 0,
            "olderAttempts": len(listed) - len(shown),
            "step": step,
            "hiddenStoreSteps": hidden_store,
            "loops": loops,
            "iterations": chosen,
            "rerun": list(workflow.graph.steps),
            "rerunReuse": reuse(workflow, first) if (first := rerun_first(workflow, doc)) else None,
            "dataStore": store,
            "storeTree": tree,
            "storeLeftOut": left_out,
            "errorChildren": failed_children(doc, runs),
            "failedAttempt": failed_attempt(workflow, doc, runs),
            "cancellation": cancellation(doc, events),
            "signals": signals,
        }


def _not_retried(events: list[EventDocument]) -> dict[str, str]:
    """Each failed attempt's reason its retry policy gave up (by step execution id)."""
    return {
        str(event["stepExecutionId"]): event["detail"]["notRetried"]
        for event in events
        if event["kind"] == "step.failed"
        and isinstance(event["detail"], Mapping)
        and isinstance(event["detail"].get("notRetried"), str)
    }


def _listed(run: StepDocument, chosen: Mapping[str, int]) -> bool:
    """Whether an attempt is listed: outside loops, of the chosen iterations, of the first
    SHOWN_ITERATIONS when none is chosen, or not completed."""
    loop = run.get("loop") or {}
    if not loop or run["status"] not in ("Completed", "Disabled"):
        return True
    return all(chosen[k] == i if k in chosen else i < SHOWN_ITERATIONS for k, i in loop.items())


def _latest(runs: list[StepDocument]) -> list[StepDocument]:
    """``runs`` (in run order) less all but the latest SHOWN_ATTEMPTS completed (or
    disabled) ones: those running, waiting, failed or cancelled stay, however many."""
    ended = [i for i, run in enumerate(runs) if run["status"] in ("Completed", "Disabled")]
    if len(ended) <= SHOWN_ATTEMPTS:
        return runs
    dropped = set(ended[: len(ended) - SHOWN_ATTEMPTS])
    return [run for i, run in enumerate(runs) if i not in dropped]


def _trim_store(store: dict[str, Any], shown: list[StepDocument]) -> int:
    """Past SHOWN_ATTEMPTS step entries, keep in ``store["steps"]`` those of the attempts
    ``shown``; how many were left out."""
    steps: dict[str, Any] = store["steps"]
    if len(steps) <= SHOWN_ATTEMPTS:
        return 0
    keep = {run["stepId"] for run in shown}
    store["steps"] = {sid: entry for sid, entry in steps.items() if sid in keep}
    return len(steps) - len(store["steps"])


def _children(
    run: StepDocument, statuses: Mapping[str, str]
) -> tuple[list[ChildView], dict[str, int]]:
    """An attempt's first SHOWN_CHILDREN children (those not Completed first, each in
    the order started) with their statuses, and how many it has per status."""
    found: list[ChildView] = [
        {"id": c["id"], "status": statuses.get(c["id"], "Unknown")}
        for c in run["childWorkflowExecutions"]
    ]
    counts: dict[str, int] = {}
    for child in found:
        counts[child["status"]] = counts.get(child["status"], 0) + 1
    found.sort(key=lambda child: child["status"] == "Completed")  # stable
    return found[:SHOWN_CHILDREN], counts


def _attempt(
    workflow: CompiledWorkflow,
    run: StepDocument,
    key: str | None,
    statuses: Mapping[str, str] | None = None,
    not_retried: Mapping[str, str] | None = None,
) -> AttemptView:
    step = workflow.steps.get(run["stepId"])
    templates = step_templates(step, run.get("inputData")) if step else []
    children, counts = _children(run, statuses or {})
    return {
        "stepExecutionId": run["id"],
        "stepId": run["stepId"],
        "type": run["type"],
        "label": timeline.label(run),
        "status": run["status"],
        "attempt": run["attempt"],
        "startedAt": run["startedAt"],
        "endedAt": timeline.ended_at(run),
        "durationMs": run_duration(run),
        "idempotencyKey": key,
        "input": run.get("inputData"),
        "output": run["outputData"],
        "error": run["error"],
        "templates": templates,
        "children": children,
        "childCounts": counts,
        "errorChildren": error_children(run["error"]),
        "notRetried": (not_retried or {}).get(run["id"]),
        "loop": dict(run.get("loop") or {}),
    }
