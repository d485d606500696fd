"""Storage of ``flowledger db info``: rows per main table, and the database's size."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from sqlalchemy import Table, func, select, text

from flowledger.storage.schema import (
    events,
    executions,
    signals,
    step_executions,
    workflow_versions,
    workflows,
)
from flowledger.storage.schema_artifacts import artifacts
from flowledger.storage.schema_entities import entities
from flowledger.storage.schema_jobs import job_runs
from flowledger.storage.schema_ops import step_logs
from flowledger.storage.schema_webhooks import deliveries
from flowledger.storage.sqlpart import SQLPart, reads

#: The tables ``db info`` counts, in the order it shows them.
MAIN_TABLES: tuple[Table, ...] = (
    workflows,
    workflow_versions,
    executions,
    step_executions,
    events,
    step_logs,
    signals,
    artifacts,
    job_runs,
    entities,
    deliveries,
)


class SizeStore(ABC):
    @abstractmethod
    async def table_counts(self) -> dict[str, int]:
        """Rows in each of :data:`MAIN_TABLES`, by table name."""

    @abstractmethod
    async def database_size(self) -> int | None:
        """Bytes the database takes (SQLite: its file with WAL; PostgreSQL: the database);
        None for an in-memory database."""


class SQLSizeStore(SQLPart, SizeStore):
    @reads
    def table_counts(self) -> dict[str, int]:
        with self.reading():
            return {
                table.name: int(
                    self.conn.execute(select(func.count()).select_from(table)).scalar_one()
                )
                for table in MAIN_TABLES
            }

    @reads
    def database_size(self) -> int | None:
        with self.reading():
            if self.conn.dialect.name == "postgresql":
                size = text("SELECT pg_database_size(current_database())")
                return int(self.conn.execute(size).scalar_one())
            database = self.conn.engine.url.database
        if not database or database == ":memory:":
            return None
        files = (Path(database), Path(database + "-wal"), Path(database + "-shm"))
        return sum(f.stat().st_size for f in files if f.exists())
