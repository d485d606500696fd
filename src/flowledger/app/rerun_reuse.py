"""What a rerun of an execution from one of its steps reuses: the outputs of the steps
that run before it (the runtime's rule: definition.graph.ancestors)."""

from __future__ import annotations

from pydantic import Field
from typing_extensions import TypedDict

from flowledger.app.models import Id, Request
from flowledger.definition.compiled import CompiledGraph, CompiledWorkflow
from flowledger.definition.graph import ancestors
from flowledger.types import ExecutionDocument

#: A rerun's reused steps named in its hint; the others are counted.
MOST_NAMED_REUSED = 20


class RerunReuse(Request):
    """What a rerun of the execution from ``from_step`` would reuse."""

    id: str = Id
    from_step: str = Field(min_length=1, max_length=128)


class ReuseView(TypedDict):
    """The steps whose outputs a rerun from ``fromStep`` reuses: the first
    ``MOST_NAMED_REUSED`` in the graph's order, and how many in all."""

    fromStep: str
    reused: list[str]
    count: int


def rerun_first(workflow: CompiledWorkflow, doc: ExecutionDocument) -> str | None:
    """The step a rerun form offers first: where the execution stopped, else its first."""
    current = doc["currentStateName"]
    if current in workflow.graph.steps:
        return current
    return next(iter(workflow.graph.steps), None)


def reuse(workflow: CompiledWorkflow, from_step: str) -> ReuseView:
    """The top-graph steps that run before ``from_step``, in the graph's order."""
    found = ancestors(from_step, _predecessors(workflow.graph))
    ordered = [sid for sid in workflow.graph.steps if sid in found]
    return {"fromStep": from_step, "reused": ordered[:MOST_NAMED_REUSED], "count": len(ordered)}


def _predecessors(graph: CompiledGraph) -> dict[str, list[str]]:
    return {sid: list(step.predecessors) for sid, step in graph.steps.items()}
