"""What a running execution needs from its engine: storage, HTTP, templates, step types."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

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
