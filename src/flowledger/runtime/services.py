"""What a running execution needs from its engine: storage, HTTP, templates, step types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from flowledger.steps.artifact_access import ArtifactAccess
from flowledger.steps.entity_access import EntityAccess
from flowledger.steps.registry import StepRegistry
from flowledger.storage.base import Store
from flowledger.templates import TemplateEngine
from flowledger.timeutil import Clock


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
    #: (execution id, step execution id, step id, output) → the output as stored: an
    #: output over the size budget becomes a reference to an artifact, read back lazily.
    offload_output: Callable[[str, str, str, Any], Any] | None = None
