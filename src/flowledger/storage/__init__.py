"""Storage backends, chosen from the database URL."""

from __future__ import annotations

from flowledger.errors import StorageError
from flowledger.storage.base import Batch, ExecutionQuery, Row, Store, WorkflowVersion

__all__ = ["Batch", "ExecutionQuery", "Row", "Store", "WorkflowVersion", "open_store"]


def open_store(url: str) -> Store:
    """A store for ``url``: ``sqlite:///path.db`` (``sqlite://`` for memory) for now."""
    if url.startswith("sqlite:"):
        from flowledger.storage.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql:", "postgres:", "postgresql+")):
        raise StorageError(
            "PostgreSQL support is not built yet; use a sqlite:/// URL (see the README's roadmap)"
        )
    raise StorageError(f"unsupported database URL {url!r}: use sqlite:///path/to/file.db")
