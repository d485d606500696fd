"""Storage of the artifacts part of the model: abstract verbs, and their SQL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from flowledger.storage.schema_artifacts import artifacts
from flowledger.storage.sqlpart import SQLPart, older_than, reads


class ArtifactStore(ABC):
    """What the runtime and the faces need from a database for artifacts."""

    @abstractmethod
    def add_artifact(self, row: dict[str, Any]) -> None:
        """Describe an artifact whose file is already complete on disk.

        Synchronous on purpose: the runner stores an output over the size budget in the
        middle of a scheduler round, where it cannot await. It is one short INSERT.
        """

    @abstractmethod
    async def list_artifacts(
        self,
        execution_id: str,
        limit: int | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[dict[str, Any]]:
        """The execution's artifacts, all oldest first; with ``limit``, one page newest
        first after ``before`` (created_at, id)."""

    @abstractmethod
    async def get_artifact(self, artifact_id: str) -> dict[str, Any] | None: ...


class SQLArtifactStore(SQLPart, ArtifactStore):
    """Shared SQL for SQLite and PostgreSQL; SQLStore provides the connection and clock."""

    def add_artifact(self, row: dict[str, Any]) -> None:
        # Runs on the writer thread like every write (so it never races the writer's
        # transaction for SQLite's lock); the caller waits for it. Decision: this rare
        # path (an output over the size budget) may hold the loop for one INSERT plus
        # the writes queued before it; making it async would change the runner.
        self._writer.run_blocking(lambda: self._add_artifact(row))

    def _add_artifact(self, row: dict[str, Any]) -> None:
        with self.conn.begin():
            self.conn.execute(insert(artifacts), [row])

    @reads
    def list_artifacts(
        self,
        execution_id: str,
        limit: int | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[dict[str, Any]]:
        t = artifacts
        query = select(t).where(t.c.execution_id == execution_id).order_by(t.c.created_at, t.c.id)
        if limit is not None:
            query = (
                select(t)
                .where(t.c.execution_id == execution_id)
                .order_by(t.c.created_at.desc(), t.c.id.desc())
                .limit(limit)
            )
            if before is not None:
                query = query.where(older_than(t.c.created_at, t.c.id, before))
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(query)]

    @reads
    def get_artifact(self, artifact_id: str) -> dict[str, Any] | None:
        with self.reading():
            row = self.conn.execute(select(artifacts).where(artifacts.c.id == artifact_id)).first()
        return dict(row._mapping) if row else None
