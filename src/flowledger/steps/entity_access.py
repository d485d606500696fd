"""What a step may do with the entity store (``StepContext.entities``)."""

from __future__ import annotations

from typing import Protocol


class EntityAccess(Protocol):
    """The entity store as one execution's steps see it: writes fire entity triggers."""
