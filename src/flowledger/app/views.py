"""Read models for people looking at executions (the web UI; any face may offer them):

- :meth:`Views.execution`: one execution as a person debugging it wants to see it — the
  definition's graph coloured by status (loops as groups with ``done/total``, branches
  taken or not, sub-workflow children), a timeline of every attempt, each attempt's
  rendered input beside its templates, output, error, duration and idempotency key, the
  data store (bounded: :func:`store_tree`), the waiting inputs, the children of each
  sub-workflow attempt with their statuses, the children a failure came from, how a
  cancel ended it, and for every step which outputs a rerun from it reuses.
- :meth:`Views.artifacts`: its artifacts with a bounded preview of the small texts, JSON
  and images among them, read through the download's own operation (app.artifacts).

The rules (which step execution stands for a step, what a rerun reuses) are the
runtime's; this only arranges what the store holds.
"""

from __future__ import annotations

import builtins
import json
import re
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import datetime
from itertools import islice
from typing import Any, NotRequired, cast

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app import timeline
from flowledger.app.artifacts import Artifacts
from flowledger.app.models import GetArtifact, Id, ListArtifacts, Request
from flowledger.app.pending import PendingSignal, document_of
from flowledger.app.results import ArtifactDocument
from flowledger.app.timeline import TimelineBar, TimelineBreak
from flowledger.artifacts.service import is_reference
from flowledger.definition.compiled import CompiledGraph, CompiledStep, CompiledWorkflow
from flowledger.definition.graph import ancestors
from flowledger.errors import NotFoundError, StorageError
from flowledger.runtime.engine import Engine
from flowledger.runtime.status import ExecutionStatus
from flowledger.steps.base import StepKind
from flowledger.types import EventDocument, ExecutionDocument, StepDocument

#: When steps of one id ran several times (loop iterations), the status the graph shows
#: is the first of these that the final attempt of any iteration has: trouble first, then
#: work in flight (an attempt a retry made good is no trouble: _node_status).
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
#: The data store tree (store_tree): entries shown of one mapping or list (its first),
#: nodes shown in all (the levels nearest the top first), characters of one text. A 3 x 120
#: nested loop's ``results`` made 2,830 nodes and 1 MB of a 1.5 MB page; the console
#: reads the whole store.
STORE_ENTRIES = 20
STORE_NODES = 300
STORE_TEXT = 1000
#: Children of one sub-workflow attempt listed with their statuses (those that did not
#: complete first); the others are counted by status.
SHOWN_CHILDREN = 20
#: Children whose rendered inputs a sub-workflow attempt's template rows show.
SHOWN_CHILD_INPUTS = 5


#: An execution's artifacts previewed on its page (Views.artifacts): a text (``text/*``,
#: JSON, YAML, XML, CSV) of at most PREVIEW_BYTES, read whole and checksum-verified by
#: the download's own operation, of which the first PREVIEW_TEXT characters are shown;
#: an image of a kind a browser draws and that holds no script (not SVG) of at most
#: PREVIEW_IMAGE_BYTES, drawn from Views.artifact_image. The first PREVIEWS of them only:
#: a live page renders again at each change, and a step may save hundreds.
PREVIEW_BYTES = 64 * 1024
PREVIEW_IMAGE_BYTES = 1024 * 1024
PREVIEW_TEXT = 4096
PREVIEWS = 8
PREVIEW_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
_PREVIEW_TEXTS = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/yaml",
        "application/x-yaml",
        "application/xml",
        "application/csv",
        "application/toml",
    }
)


class ArtifactPreviews(Request):
    """An execution's artifacts as its page shows them (Views.artifacts)."""

    execution_id: str = Id


class ArtifactView(TypedDict):
    artifact: ArtifactDocument
    #: ``text``, ``image``, or None: not previewed (``note`` says why, where it could be).
    preview: str | None
    #: A text's first PREVIEW_TEXT characters (a JSON document indented first).
    text: str | None
    #: Characters of the text not in ``text``.
    cut: int
    note: str | None


def media_type(content_type: str) -> str:
    """``text/plain; charset=utf-8`` → ``text/plain``."""
    return content_type.partition(";")[0].strip().lower()


def preview_kind(content_type: str) -> str | None:
    """``image``, ``text``, or None: what an artifact of that type is previewed as."""
    media = media_type(content_type)
    if media in PREVIEW_IMAGES:
        return "image"
    textual = media.startswith("text/") or media.endswith(("+json", "+xml"))
    return "text" if textual or media in _PREVIEW_TEXTS else None


def _preview_text(data: bytes, content_type: str) -> str | None:
    """The text of a preview (None: not text after all)."""
    text = data.decode("utf-8", "replace")
    if "\x00" in text:
        return None
    media = media_type(content_type)
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # shown as it is
            pass
    return text


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
    #: The child the node links to: one that failed when one did, else its first.
    child: str | None
    childFailed: bool
    #: Iterations whose final attempt failed while the step went on (continue_on_error):
    #: its ``status`` is then that of the others ("completed with failed iterations").
    failedIterations: int
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
    #: Rendered once per child (a sub-workflow's ``input`` with ``items``): ``value`` is
    #: the list of the first SHOWN_CHILD_INPUTS children's values, of this many.
    perChild: NotRequired[int]


class ChildView(TypedDict):
    id: str
    status: str


class TreeNode(TypedDict):
    """One entry of the data store tree (store_tree)."""

    #: Its key in the mapping, its index in the list; None at the top.
    key: str | int | None
    #: The template expression that reads it (``steps.each.output.results[3]``).
    path: str
    #: ``mapping``, ``list``, ``value``, or ``reference`` (artifact-shaped data: the face
    #: decides whether it is this execution's artifact).
    kind: str
    #: Entries of a mapping or list.
    size: int
    #: A value's (a reference's) data; a text past STORE_TEXT characters is cut.
    value: Any
    #: Characters cut off ``value``.
    cut: int
    children: list[TreeNode]
    #: Entries of a mapping or list not among ``children``.
    more: int


class Cancellation(TypedDict):
    by: str | None
    at: str | None
    reason: str | None


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


class Views:
    """The read models of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine, artifacts: Artifacts) -> None:
        self._engine = engine
        self._artifacts = artifacts

    async def artifacts(self, request: ArtifactPreviews) -> builtins.list[ArtifactView]:
        """The execution's artifacts, oldest first, the first PREVIEWS small texts and
        images among them with a preview (NotFoundError for no such execution). A text
        is read as its download is (app.artifacts: the same checksum check, the same
        refusal of a damaged file, said in ``note`` instead of failing the page)."""
        docs = await self._artifacts.list(ListArtifacts(execution_id=request.execution_id))
        found: builtins.list[ArtifactView] = []
        budget = PREVIEWS
        for doc in docs:
            shown: ArtifactView = {
                "artifact": doc,
                "preview": None,
                "text": None,
                "cut": 0,
                "note": None,
            }
            found.append(shown)
            kind = preview_kind(doc["contentType"])
            if kind is None or budget <= 0:
                continue
            most = PREVIEW_IMAGE_BYTES if kind == "image" else PREVIEW_BYTES
            if doc["size"] > most:
                shown["note"] = f"not previewed: over {most // 1024} KiB"
                continue
            budget -= 1
            if kind == "image":
                shown["preview"] = "image"
                continue
            try:
                _, data = await self._artifacts.read(GetArtifact(id=doc["id"]))
            except (NotFoundError, StorageError) as exc:
                shown["note"] = f"not previewed: {exc}"
                continue
            text = _preview_text(data, doc["contentType"])
            if text is None:
                shown["note"] = "not previewed: it is not text"
                continue
            shown["preview"] = "text"
            shown["text"], shown["cut"] = text[:PREVIEW_TEXT], max(0, len(text) - PREVIEW_TEXT)
        return found

    async def artifact_image(self, request: GetArtifact) -> tuple[ArtifactDocument, bytes]:
        """An artifact's bytes to draw as an image on its execution's page, read as its
        download is; NotFoundError for one that has no image preview (another type, or
        larger than PREVIEW_IMAGE_BYTES)."""
        doc = await self._artifacts.get(request)
        if preview_kind(doc["contentType"]) != "image" or doc["size"] > PREVIEW_IMAGE_BYTES:
            raise NotFoundError(f"artifact {request.id} has no image preview: download it")
        return await self._artifacts.read(request)

    async def definition_graph(
        self, request: DefinitionGraph
    ) -> tuple[builtins.list[GraphNode], builtins.list[GraphEdge]]:
        """Nodes and edges of a workflow version (its live one, else its newest)."""
        chosen = await self._engine.resolve_version(request.name, request.version)
        workflow = await self._engine.workflow_to_read(chosen.id)  # drawn, never run
        return _graph(workflow, [], {}, {})

    async def rerun_reuse(self, request: RerunReuse) -> ReuseView:
        """What a rerun from ``from_step`` reuses (NotFoundError: no such top-graph step)."""
        doc = await self._engine.get_execution(request.id)
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
        doc = document
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
        has_children = any(run["childWorkflowExecutions"] for run in runs)
        statuses = await engine.store.child_statuses(request.id) if has_children else {}
        nodes, edges = _graph(workflow, runs, totals, chosen, statuses)
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
        return {
            "execution": doc,
            "nodes": nodes,
            "edges": edges,
            "timeline": bars,
            "events": events,
            "timelineMs": span,
            "timelineBreaks": breaks,
            "attempts": [_attempt(workflow, run, keys.get(run["id"]), statuses) for run in shown],
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
            "storeTree": tree,
            "storeLeftOut": left_out,
            "errorChildren": _failed_children(doc, runs),
            "failedAttempt": _failed_attempt(workflow, doc, runs),
            "cancellation": _cancellation(doc, events),
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
    statuses: Mapping[str, str] | None = None,
) -> tuple[builtins.list[GraphNode], builtins.list[GraphEdge]]:
    by_step: dict[str, builtins.list[StepDocument]] = {}
    for run in runs:
        if _selected(run, chosen):
            by_step.setdefault(run["stepId"], []).append(run)
    nodes: builtins.list[GraphNode] = []
    edges: builtins.list[GraphEdge] = []
    status: dict[str, str] = {}
    failed_iterations: dict[str, int] = {}
    for step in workflow.steps.values():
        found = by_step.get(step.id, [])
        status[step.id], failed_iterations[step.id] = _node_status(step, found)
    for step in workflow.steps.values():
        found = by_step.get(step.id, [])
        done = None
        if step.body is not None:
            done = _iterations_done(step, runs, chosen)
        child, child_failed = _linked_child(found, statuses or {})
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
                "child": child,
                "childFailed": child_failed,
                "failedIterations": failed_iterations[step.id],
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


def _finals(runs: builtins.list[StepDocument]) -> builtins.list[StepDocument]:
    """The final attempt of each iteration among ``runs`` (a step's, in run order): the
    latest, which a retry's replaces."""
    final: dict[tuple[tuple[str, int], ...], StepDocument] = {}
    for run in runs:
        final[tuple(sorted((run.get("loop") or {}).items()))] = run
    return list(final.values())


def _priority(runs: builtins.list[StepDocument]) -> str:
    present = {run["status"] for run in runs}
    return next((s for s in STATUS_PRIORITY if s in present), runs[-1]["status"])


def _node_status(step: CompiledStep, runs: builtins.list[StepDocument]) -> tuple[str, int]:
    """The status the graph shows for ``step`` (of its ``runs``) and how many iterations
    it failed in while it went on. Decided by each iteration's final attempt: a failed
    attempt a retry made good is no failure (it showed a Completed execution's step as
    Failed). Iterations that ended Failed under ``continue_on_error`` beside others that
    did not leave the step the others' status, with their count; all failed: Failed."""
    if not runs:
        return "NotStarted", 0
    finals = _finals(runs)
    others = [run for run in finals if run["status"] != "Failed"]
    failed = len(finals) - len(others)
    if failed and others and step.spec.continue_on_error:
        return _priority(others), failed
    return _priority(finals), 0


def _linked_child(
    runs: builtins.list[StepDocument], statuses: Mapping[str, str]
) -> tuple[str | None, bool]:
    """The child a step's node links to, and whether it failed: the one its final
    attempts' error names, else one that ended Failed, else the first (it was the first
    always: a failed sub-workflow's link opened a child that had completed)."""
    finals = _finals(runs)
    for run in reversed(finals):
        named = _error_children(run["error"]) if run["status"] == "Failed" else []
        if named:
            return named[0], True
    ids = [c["id"] for run in finals for c in run["childWorkflowExecutions"]]
    failed = next((c for c in ids if statuses.get(c) == "Failed"), None)
    if failed is not None:
        return failed, True
    return (ids[0] if ids else None), False


#: What an execution id looks like: an error's details are data a handler may have made.
_ID = re.compile(r"[0-9A-Za-z-]{8,64}\Z")
#: Levels of children followed down an error (sub-workflows nest at most this deep).
_MOST_NESTED = 32


def _error_children(error: Any) -> builtins.list[str]:
    """The child executions a sub-workflow step's error came from, outermost first: its
    ``details.childWorkflowExecutionId``, then that child's error's own, and so on."""
    found: builtins.list[str] = []
    while isinstance(error, dict) and len(found) < _MOST_NESTED:
        details = error.get("details")
        child = details.get("childWorkflowExecutionId") if isinstance(details, dict) else None
        if not isinstance(child, str) or not _ID.match(child):
            break
        found.append(child)
        error = cast(dict[str, Any], details).get("childError")
    return found


def _failed_children(
    doc: ExecutionDocument, runs: builtins.list[StepDocument]
) -> builtins.list[str]:
    """The children a failed execution's error came from: named by its error, else (a
    loop's error names its iteration, not the child) by the latest failed attempt's."""
    if doc["runtimeStatus"] != "Failed":
        return []
    named = _error_children(doc["error"])
    for run in reversed(runs):
        if named:
            break
        if run["status"] == "Failed":
            named = _error_children(run["error"])
    return named


def _failed_attempt(
    workflow: CompiledWorkflow, doc: ExecutionDocument, runs: builtins.list[StepDocument]
) -> str | None:
    """The task attempt whose failure failed the execution: the one its error names, or
    for a loop's error (which names the iteration's step, not its attempt) the latest that
    failed inside the loop, one with ``continue_on_error`` only if no other did."""
    error = doc["error"]
    ended_failed = ExecutionStatus(doc["runtimeStatus"]) == ExecutionStatus.FAILED
    if not ended_failed or not isinstance(error, dict):
        return None

    def task(run: StepDocument) -> CompiledStep | None:
        step = workflow.steps.get(run["stepId"])
        return step if step is not None and step.step_type.kind is StepKind.TASK else None

    failed = [run for run in runs if run["status"] == "Failed" and task(run) is not None]
    for run in reversed(failed):
        if run["stepId"] == error.get("stepId") and run["attempt"] == error.get("attempt"):
            return str(run["id"])
    inside = [run for run in failed if error.get("stepId") in (run.get("loop") or {})]
    stopped = [run for run in inside if not cast(CompiledStep, task(run)).spec.continue_on_error]
    chosen = stopped or inside
    return chosen[-1]["id"] if chosen else None


def _cancellation(
    doc: ExecutionDocument, events: builtins.list[EventDocument]
) -> Cancellation | None:
    """Who cancelled the execution, when and why: its ``execution.cancelled`` event, else
    what its error says (``cancelled: REASON``, ``cancelledBy``)."""
    if ExecutionStatus(doc["runtimeStatus"]) != ExecutionStatus.CANCELLED:
        return None
    for event in reversed(events):
        if event["kind"] == "execution.cancelled":
            detail = event.get("detail") or {}
            return {"by": detail.get("by"), "at": event["at"], "reason": detail.get("reason")}
    error = doc["error"] if isinstance(doc["error"], dict) else {}
    message = error.get("message")
    reason = message.removeprefix("cancelled: ") if isinstance(message, str) else None
    return {"by": error.get("cancelledBy"), "at": doc["completedAt"], "reason": reason}


def _children(
    run: StepDocument, statuses: Mapping[str, str]
) -> tuple[builtins.list[ChildView], dict[str, int]]:
    """An attempt's first SHOWN_CHILDREN children (those not Completed first, each in
    the order started) with their statuses, and how many it has per status."""
    found: builtins.list[ChildView] = [
        {"id": c["id"], "status": statuses.get(c["id"], "Unknown")}
        for c in run["childWorkflowExecutions"]
    ]
    counts: dict[str, int] = {}
    for child in found:
        counts[child["status"]] = counts.get(child["status"], 0) + 1
    found.sort(key=lambda child: child["status"] == "Completed")  # stable
    return found[:SHOWN_CHILDREN], counts


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Names that a template's ``.name`` would not read as a key.
_NOT_DOTTED = frozenset(dir(dict)) | {"true", "false", "none", "True", "False", "None"}


def _member(path: str, key: str | int) -> str:
    """The template expression that reads ``key`` of what ``path`` reads."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _NAME.match(key) and key not in _NOT_DOTTED:
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def _tree_node(key: str | int | None, path: str, value: Any) -> TreeNode:
    node: TreeNode = {
        "key": key,
        "path": path,
        "kind": "value",
        "size": 0,
        "value": None,
        "cut": 0,
        "children": [],
        "more": 0,
    }
    if is_reference(value):
        node["kind"], node["value"] = "reference", value
    elif isinstance(value, Mapping):
        node["kind"], node["size"] = "mapping", len(value)
    elif isinstance(value, list | tuple):
        node["kind"], node["size"] = "list", len(value)
    elif isinstance(value, str) and len(value) > STORE_TEXT:
        node["value"], node["cut"] = value[:STORE_TEXT], len(value) - STORE_TEXT
    else:
        node["value"] = value
    return node


def store_tree(store: Mapping[str, Any]) -> tuple[TreeNode, int]:
    """The data store as the page's tree, and how many entries it leaves out: of each
    mapping or list its first STORE_ENTRIES entries (the top two levels, which name the
    steps, up to SHOWN_ATTEMPTS), STORE_NODES nodes in all, the levels nearest the top
    first (a breadth-first walk: a long first branch cannot take every node), texts cut
    at STORE_TEXT characters. Each node has the expression that reads it (the console
    reads the whole store)."""
    root = _tree_node(None, "", store)
    budget = STORE_NODES
    left_out = 0
    queue: deque[tuple[TreeNode, Any, int]] = deque([(root, store, 0)])
    while queue:
        node, value, depth = queue.popleft()
        if node["kind"] not in ("mapping", "list"):
            continue
        most = SHOWN_ATTEMPTS if depth < 2 else STORE_ENTRIES
        take = max(0, min(node["size"], most, budget))
        entries = value.items() if node["kind"] == "mapping" else enumerate(value)
        for key, inner in islice(entries, take):
            child = _tree_node(key, _member(node["path"], key), inner)
            node["children"].append(child)
            queue.append((child, inner, depth + 1))
        budget -= take
        node["more"] = node["size"] - take
        left_out += node["more"]
    return root, left_out


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


def _attempt(
    workflow: CompiledWorkflow,
    run: StepDocument,
    key: str | None,
    statuses: Mapping[str, str] | None = None,
) -> AttemptView:
    step = workflow.steps.get(run["stepId"])
    templates = _step_templates(step, run.get("inputData")) if step else []
    children, counts = _children(run, statuses or {})
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
        "children": children,
        "childCounts": counts,
        "errorChildren": _error_children(run["error"]),
        "loop": dict(run.get("loop") or {}),
    }


def _step_templates(step: CompiledStep, rendered: Any) -> builtins.list[TemplateValue]:
    """Every template of the step's input with what it rendered to. A sub-workflow's
    ``input`` is kept as written and rendered per child into ``inputs`` (it showed the
    template as its own value): its rows show the child's value, or with ``items`` the
    first SHOWN_CHILD_INPUTS children's."""
    source = step.spec.input
    inputs = rendered.get("inputs") if isinstance(rendered, dict) else None
    if (
        step.step_type.kind is not StepKind.SUB_WORKFLOW
        or not isinstance(source, dict)
        or not isinstance(rendered, dict)
        or not isinstance(inputs, list)
    ):
        return list(_templates(source, rendered, "input"))
    rows: builtins.list[TemplateValue] = []
    for name, inner in source.items():
        path = f"input.{name}"
        if name != "input":
            rows += _templates(inner, rendered.get(name, _MISSING), path)
        elif rendered.get("items") is None:  # one child
            rows += _templates(inner, inputs[0] if inputs else _MISSING, path)
        else:
            each = [list(_templates(inner, one, path)) for one in inputs[:SHOWN_CHILD_INPUTS]]
            for index, row in enumerate(_templates(inner, _MISSING, path)):
                row["value"] = [values[index]["value"] for values in each]
                row["perChild"] = len(inputs)
                rows.append(row)
    return rows


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
