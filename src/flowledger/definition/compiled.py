"""Immutable compiled definitions: what the runtime executes. Built once, never changed."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowledger.definition.models import StepSpec, WorkflowSpec
from flowledger.definition.triggers import CompiledTrigger
from flowledger.errors import Path
from flowledger.schema_check import validator_for
from flowledger.steps.base import StepType
from flowledger.templates import Template, TemplatedValue

if TYPE_CHECKING:
    from jsonschema.protocols import Validator


@dataclass(frozen=True, eq=False)
class Branch:
    """``then``/``else`` sugar: run only when ``condition`` produced ``result``."""

    condition: str
    result: bool


@dataclass(frozen=True, eq=False)
class CompiledStep:
    id: str
    spec: StepSpec
    step_type: StepType
    source_path: Path
    #: Ids of the loops enclosing this step, outermost first ("" segments never occur).
    scope: tuple[str, ...]
    predecessors: tuple[str, ...]
    successors: tuple[str, ...]
    when: Template | None
    branch: Branch | None
    input: TemplatedValue
    body: CompiledGraph | None
    #: The step type's ``iteration_end_field`` (``sys.loop``'s ``until``), left out of
    #: ``input``: its driver renders it at the end of each iteration, not at the start.
    iteration_end: Template | None = None
    #: The successors with ``join: first`` (definition.races): a step's end may release
    #: one at once. The rest (``released``) wait for all their predecessors.
    raced: tuple[str, ...] = ()
    #: Its children in the graph's post-dominator tree, when the graph has a ``join:
    #: first`` (definition.races): a join's race is its subtree.
    post_dominated: tuple[str, ...] = ()
    #: The successors that wait for every predecessor (``successors`` but ``raced``).
    released: tuple[str, ...] = field(init=False)
    #: Where the step sits: ``process_items/enrich`` for a loop body step. Set when built
    #: (read for every run of the step: ids, rows, task names; a cached_property's first
    #: read takes a lock, and a chain's steps are each read once per run).
    path: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", "/".join((*self.scope, self.id)))
        raced = self.raced
        released = tuple(s for s in self.successors if s not in raced) if raced else self.successors
        object.__setattr__(self, "released", released)

    @property
    def name(self) -> str:
        return self.spec.name or self.id

    @property
    def type_name(self) -> str:
        return self.step_type.name

    @functools.cached_property
    def output_validator(self) -> Validator | None:
        """The validator of the step's declared ``output_schema`` (None without one):
        the references to its output were checked against it, so its output is too."""
        schema = self.spec.output_schema
        return None if schema is None else validator_for(schema)


@dataclass(frozen=True, eq=False)
class CompiledGraph:
    #: The loop step whose body this graph is; None for the workflow's top graph.
    loop_id: str | None
    steps: Mapping[str, CompiledStep]

    def roots(self) -> list[CompiledStep]:
        return [s for s in self.steps.values() if not s.predecessors]


@dataclass(frozen=True, eq=False)
class CompiledWorkflow:
    spec: WorkflowSpec
    #: The document as loaded (JSON-compatible); what is stored as the template version.
    document: Mapping[str, Any]
    checksum: str
    file: str
    graph: CompiledGraph
    #: Every step of every graph by id (ids are unique across the workflow).
    steps: Mapping[str, CompiledStep]
    output: TemplatedValue | None
    triggers: tuple[CompiledTrigger, ...] = ()
    #: The secrets the definition reads (``secrets.NAME``): what its executions redact.
    secret_names: frozenset[str] = frozenset()
    #: The text it was compiled from, as written (None: built from data); stored with its
    #: version for people to read, never part of its identity (``checksum``).
    source: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @functools.cached_property
    def runnable(self) -> bool:
        """False when a step's type is a stand-in: it can be started, shown or drawn in
        this process, never run here."""
        return not any(step.step_type.stands_in for step in self.steps.values())

    @functools.cached_property
    def input_validator(self) -> Validator | None:
        """The validator of ``input_schema`` (None without one), built on the first start:
        building it on each was a sixth of an in-process start's time (cProfile)."""
        schema = self.spec.input_schema
        return None if schema is None else validator_for(schema)
