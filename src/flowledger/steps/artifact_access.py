"""What a step may do with artifacts (``StepContext.artifacts``)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, Protocol


class ArtifactAccess(Protocol):
    """Files a step saves, linked to its execution and step."""

    async def save(
        self, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """Store ``data`` as a file named ``name``; return its description.

        The description is what ``flowledger executions artifacts`` lists: ``{id,
        executionId, stepExecutionId, stepId, name, contentType, size, sha256, kind,
        createdAt}``. ``name`` is for people (downloads keep it); path separators and
        other unsafe characters are replaced, and it never names the file on disk.
        """
        ...

    async def save_stream(
        self,
        name: str,
        chunks: AsyncIterable[bytes],
        content_type: str = "application/octet-stream",
    ) -> dict[str, Any]:
        """Store the bytes ``chunks`` yields, as :meth:`save` does, holding one chunk in
        memory at a time (a large download). When ``chunks`` raises, nothing is kept."""
        ...
