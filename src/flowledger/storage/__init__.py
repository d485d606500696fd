"""Storage backends, chosen from the database URL."""

from __future__ import annotations

from flowledger.config import Settings
from flowledger.errors import DatabaseUrlError
from flowledger.storage.base import (
    Batch,
    ExecutionQuery,
    Row,
    Store,
    VersionSummary,
    WorkflowVersion,
)

__all__ = [
    "Batch",
    "ExecutionQuery",
    "Row",
    "Store",
    "VersionSummary",
    "WorkflowVersion",
    "open_store",
]

POSTGRES_SCHEMES = ("postgresql:", "postgres:", "postgresql+", "postgres+")


def open_store(url: str, settings: Settings | None = None, *, create: bool = True) -> Store:
    """A store for ``url``: ``sqlite:///path.db`` (``sqlite://`` for memory) or ``postgresql://…``.

    ``settings`` gives what storage needs besides the URL (SQLite's synchronous pragma).
    Storage never reads the environment: without settings, the defaults apply (the faces
    and the Engine pass ``Settings.from_env()``).

    ``create=False`` (commands that only read): a SQLite file that does not exist raises
    :class:`MissingDatabaseError` instead of being created.
    """
    settings = settings or Settings()
    if url.startswith("sqlite:"):
        from flowledger.storage.sqlite import SQLiteStore

        return SQLiteStore(url, synchronous=settings.sqlite_synchronous, create=create)
    if url.startswith(POSTGRES_SCHEMES):
        from flowledger.storage.postgres import PostgresStore

        return PostgresStore(url)
    raise DatabaseUrlError(
        f"unsupported database URL {url!r}: use sqlite:///path/to/file.db "
        "or postgresql://user:password@host:5432/database"
    )
