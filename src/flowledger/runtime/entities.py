"""The entity store service: types, entities, and the outbox of entity events."""

from __future__ import annotations

from flowledger.steps.entity_access import EntityAccess
from flowledger.storage import Store
from flowledger.timeutil import Clock


class EntityService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def bind(self, execution_id: str, depth: int) -> EntityAccess:
        """The entity store as the steps of one execution see it."""
        return object()  # filled in by the entity store part
