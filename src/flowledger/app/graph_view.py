"""The definition's graph as an execution's page draws it: a node per step coloured by
status (loops as groups with ``done/total``, sub-workflow children linked), an edge per
dependency, taken, skipped or pending; and a stored version's graph, nothing run yet."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app.endings import error_children
from flowledger.app.loop_counts import iterations_done
from flowledger.app.models import Request
from flowledger.app.step_runs import selected
from flowledger.definition.compiled import CompiledStep, CompiledWorkflow
from flowledger.types import StepDocument

#: When steps of one id ran several times (loop iterations), the status the graph shows
#: is the first of these that the final attempt of any iteration has: trouble first, then
#: work in flight (an attempt a retry made good is no trouble: _node_status).
STATUS_PRIORITY = ("Failed", "InProgress", "Cancelled", "Completed", "NotStarted", "Disabled")


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
    #: ``then``/``else`` for a branch of a condition, ``body`` into a loop's body,
    #: ``first`` into a ``join: first`` (the first to complete releases it).
    label: str | None
    #: ``taken``, ``skipped`` (the target was disabled) or ``pending``.
    state: str


def graph(
    workflow: CompiledWorkflow,
    runs: list[StepDocument],
    loops: dict[str, int],
    chosen: dict[str, int],
    statuses: Mapping[str, str] | None = None,
) -> tuple[list[GraphNode], list[GraphEdge]]:
    """The graph's nodes and edges coloured by ``runs`` (of the ``chosen`` loop
    iterations), with the loops' item counts ``loops`` and the children's ``statuses``;
    no runs: a definition's graph, nothing run yet."""
    by_step: dict[str, list[StepDocument]] = {}
    for run in runs:
        if selected(run, chosen):
            by_step.setdefault(run["stepId"], []).append(run)
    nodes: list[GraphNode] = []
    edges: list[GraphEdge] = []
    status: dict[str, str] = {}
    failed_iterations: dict[str, int] = {}
    for step in workflow.steps.values():
        found = by_step.get(step.id, [])
        status[step.id], failed_iterations[step.id] = _node_status(step, found)
    for step in workflow.steps.values():
        found = by_step.get(step.id, [])
        done = None
        if step.body is not None:
            done = iterations_done(step, runs, chosen)
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
        # Into a ``join: first``: the first of them to complete releases it (races).
        into = "first" if step.spec.join == "first" else None
        for before in step.predecessors:
            label = into
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


def _finals(runs: list[StepDocument]) -> list[StepDocument]:
    """The final attempt of each iteration among ``runs`` (a step's, in run order): the
    latest, which a retry's replaces."""
    final: dict[tuple[tuple[str, int], ...], StepDocument] = {}
    for run in runs:
        final[tuple(sorted((run.get("loop") or {}).items()))] = run
    return list(final.values())


def _priority(runs: list[StepDocument]) -> str:
    present = {run["status"] for run in runs}
    return next((s for s in STATUS_PRIORITY if s in present), runs[-1]["status"])


def _node_status(step: CompiledStep, runs: list[StepDocument]) -> tuple[str, int]:
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


def _linked_child(runs: list[StepDocument], statuses: Mapping[str, str]) -> tuple[str | None, bool]:
    """The child a step's node links to, and whether it failed: the one its final
    attempts' error names, else one that ended Failed, else the first (it was the first
    always: a failed sub-workflow's link opened a child that had completed)."""
    finals = _finals(runs)
    for run in reversed(finals):
        named = error_children(run["error"]) if run["status"] == "Failed" else []
        if named:
            return named[0], True
    ids = [c["id"] for run in finals for c in run["childWorkflowExecutions"]]
    failed = next((c for c in ids if statuses.get(c) == "Failed"), None)
    if failed is not None:
        return failed, True
    return (ids[0] if ids else None), False
