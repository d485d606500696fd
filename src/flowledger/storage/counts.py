"""How many executions are in each status (the web UI's list header), in one grouped read;
the status of each child of an execution (its page lists them), in one indexed read."""

from __future__ import annotations

from abc import ABC, abstractmethod

from sqlalchemy import func, select

from flowledger.storage.schema import executions
from flowledger.storage.sqlpart import SQLPart, reads


class CountStore(ABC):
    @abstractmethod
    async def count_by_status(self, workflow: str | None = None) -> dict[str, int]:
        """``runtime_status`` → number of executions (of ``workflow`` when given)."""

    @abstractmethod
    async def child_statuses(self, parent_id: str) -> dict[str, str]:
        """Each child execution of ``parent_id`` (every step's, every attempt's) → its
        ``runtime_status``."""


class SQLCountStore(SQLPart, CountStore):
    @reads
    def count_by_status(self, workflow: str | None = None) -> dict[str, int]:
        t = executions
        stmt = select(t.c.runtime_status, func.count()).group_by(t.c.runtime_status)
        if workflow is not None:
            stmt = stmt.where(t.c.workflow_name == workflow)
        with self.reading():
            return {str(status): int(n) for status, n in self.conn.execute(stmt)}

    @reads
    def child_statuses(self, parent_id: str) -> dict[str, str]:
        t = executions
        stmt = select(t.c.id, t.c.runtime_status).where(t.c.parent_id == parent_id)
        with self.reading():
            return {str(i): str(status) for i, status in self.conn.execute(stmt)}
