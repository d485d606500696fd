"""How many executions are in each status (the web UI's list header), in one grouped read,
and which executions a listing's filters select (the list, its total and these counts);
the status of each child of an execution (its page lists them), in one indexed read."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select

from flowledger.storage.input_match import input_condition
from flowledger.storage.schema import executions
from flowledger.storage.sqlpart import SQLPart, reads

if TYPE_CHECKING:
    from flowledger.storage.base import ExecutionQuery


class CountStore(ABC):
    @abstractmethod
    async def count_by_status(self, query: ExecutionQuery) -> dict[str, int]:
        """``runtime_status`` → number of the executions ``query`` selects (its limit and
        cursor aside)."""

    @abstractmethod
    async def child_statuses(self, parent_id: str) -> dict[str, str]:
        """Each child execution of ``parent_id`` (every step's, every attempt's) → its
        ``runtime_status``."""


class SQLCountStore(SQLPart, CountStore):
    @reads
    def count_by_status(self, query: ExecutionQuery) -> dict[str, int]:
        t = executions
        grouped = select(t.c.runtime_status, func.count()).group_by(t.c.runtime_status)
        stmt = filtered(grouped, query, postgres=self.conn.dialect.name == "postgresql")
        with self.reading():
            return {str(status): int(n) for status, n in self.conn.execute(stmt)}

    @reads
    def child_statuses(self, parent_id: str) -> dict[str, str]:
        t = executions
        stmt = select(t.c.id, t.c.runtime_status).where(t.c.parent_id == parent_id)
        with self.reading():
            return {str(i): str(status) for i, status in self.conn.execute(stmt)}


def filtered(stmt: Select[Any], query: ExecutionQuery, *, postgres: bool) -> Select[Any]:
    """``stmt`` narrowed to the executions ``query`` selects (paging aside); ``postgres``
    picks the dialect's JSON functions for its input matches."""
    t = executions
    if isinstance(query.status, tuple):
        stmt = stmt.where(t.c.runtime_status.in_(query.status))
    elif query.status:
        stmt = stmt.where(t.c.runtime_status == query.status)
    for column, value in (
        (t.c.workflow_name, query.workflow),
        (t.c.correlation_id, query.correlation_id),
        (t.c.parent_id, query.parent_id),
        (t.c.job_run_id, query.job_run_id),
        (t.c.created_by, query.created_by),
    ):
        if value:
            stmt = stmt.where(column == value)
    if query.top_level:
        stmt = stmt.where(t.c.parent_id.is_(None))
    if query.created_after:
        stmt = stmt.where(t.c.created_at >= query.created_after)
    if query.created_before:
        stmt = stmt.where(t.c.created_at < query.created_before)
    for match in query.input:
        stmt = stmt.where(input_condition(t.c.trigger, match, postgres=postgres))
    return stmt
