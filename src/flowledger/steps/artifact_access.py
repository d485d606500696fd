"""What a step may do with artifacts (``StepContext.artifacts``)."""

from __future__ import annotations

from typing import Protocol


class ArtifactAccess(Protocol):
    """Files a step saves, linked to its execution and step."""
