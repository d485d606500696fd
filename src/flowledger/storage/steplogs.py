"""Storage of step logs: reading them (the journal writes them with its batches)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from sqlalchemy import func, select

from flowledger.storage.schema import step_executions
from flowledger.storage.schema_ops import step_logs
from flowledger.storage.sqlpart import SQLPart, reads
from flowledger.types import Row


class StepLogStore(ABC):
    @abstractmethod
    async def get_step_logs(
        self,
        execution_id: str,
        *,
        after_id: int = 0,
        step_ids: Sequence[str] = (),
        limit: int = 1000,
        step_execution_ids: Sequence[str] = (),
    ) -> list[Row]:
        """Lines of the execution with an ``id`` above ``after_id``, oldest first (only
        those of ``step_ids``, of the attempts ``step_execution_ids``, when given);
        ``message`` is a JSON string."""

    @abstractmethod
    async def count_step_logs(self, execution_id: str) -> dict[str, int]:
        """How many lines each level has in the execution."""


class SQLStepLogStore(SQLPart, StepLogStore):
    @reads
    def get_step_logs(
        self,
        execution_id: str,
        *,
        after_id: int = 0,
        step_ids: Sequence[str] = (),
        limit: int = 1000,
        step_execution_ids: Sequence[str] = (),
    ) -> list[Row]:
        t, runs = step_logs, step_executions
        # With the loop iterations of each line's attempt (its step row's, by primary key),
        # as the event history has them.
        query = (
            select(t, runs.c.loop_key)
            .select_from(t.outerjoin(runs, runs.c.id == t.c.step_execution_id))
            .where(t.c.execution_id == execution_id, t.c.id > after_id)
        )
        if step_ids:
            query = query.where(t.c.step_id.in_(list(step_ids)))
        if step_execution_ids:
            query = query.where(t.c.step_execution_id.in_(list(step_execution_ids)))
        query = query.order_by(t.c.id).limit(limit)
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(query)]

    @reads
    def count_step_logs(self, execution_id: str) -> dict[str, int]:
        t = step_logs
        query = (
            select(t.c.level, func.count())
            .where(t.c.execution_id == execution_id)
            .group_by(t.c.level)
        )
        with self.reading():
            return {str(level): int(n) for level, n in self.conn.execute(query)}
