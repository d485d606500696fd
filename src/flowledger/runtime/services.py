"""What a running execution needs from its engine: storage, HTTP, templates, step types."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowledger.codec import Codec
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.errors import NotFoundError
from flowledger.runtime.steplogs import DEFAULT_LIMIT
from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.steps.entity_access import EntityAccess
from flowledger.steps.registry import StepRegistry
from flowledger.storage.base import Store, WorkflowVersion
from flowledger.templates import TemplateEngine
from flowledger.timeutil import Clock

if TYPE_CHECKING:
    import httpx


async def _no_workflows(version_id: str) -> CompiledWorkflow:
    raise NotFoundError(f"workflow version {version_id} is not available here")


@dataclass(frozen=True)
class Services:
    store: Store
    http: httpx.AsyncClient
    templates: TemplateEngine
    registry: StepRegistry
    clock: Clock = field(default_factory=Clock)
    #: (execution id, depth) → the entity store as that execution's steps see it.
    entities_for: Callable[[str, int], EntityAccess] | None = None
    #: (execution id, step execution id, step id) → where that step saves files.
    artifacts_for: Callable[[str, str, str], ArtifactAccess] | None = None
    #: (execution id, step execution id, step id, output, codec) → (the output as stored,
    #: its JSON when already computed): an output over the size budget becomes a reference
    #: to an artifact, read back lazily.
    offload_output: Callable[[str, str, str, Any, Codec], tuple[Any, str | None]] | None = None
    #: (reference, step id) → the offloaded output, for templates that read it.
    read_artifact: Callable[[Mapping[str, Any], str], Any] | None = None
    #: (name, version number or None for the live one) → a workflow children can run.
    resolve_workflow: (
        Callable[[str, int | None], Awaitable[tuple[CompiledWorkflow, WorkflowVersion]]] | None
    ) = None
    #: A stored version's compiled workflow.
    workflow_for_version: Callable[[str], Awaitable[CompiledWorkflow]] = _no_workflows
    #: Step logs (runtime.steplogs): the lowest level kept, and each attempt's byte budget.
    step_log_level: int = logging.INFO
    step_log_limit: int = DEFAULT_LIMIT
    #: Sub-workflow executions one root may start, all levels (``Limits.max_descendants``).
    max_descendants: int = 100_000
    #: A step's attempts cut by its process's death this many times fail it; 0 never
    #: (``FLOWLEDGER_MAX_STEP_CUTS``, runtime.recovery).
    max_step_cuts: int = 5
