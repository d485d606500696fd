"""Entity step types: sys.create_entity, sys.update_entity, sys.delete_entity, sys.query_entity."""

from __future__ import annotations

from flowledger.steps.base import StepType

ENTITY_STEP_TYPES: tuple[StepType, ...] = ()
