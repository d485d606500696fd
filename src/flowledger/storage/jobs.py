"""Storage of the jobs part of the model: abstract verbs, and their SQL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection


class JobStore(ABC):  # noqa: B024 - filled in as the part grows
    """What the runtime and the faces need from a database for jobs."""


class SQLJobStore(JobStore):
    """Shared SQL for SQLite and PostgreSQL; SQLStore provides the connection and clock."""

    @property
    @abstractmethod
    def conn(self) -> Connection: ...

    @abstractmethod
    def _sql_now(self, plus: timedelta = timedelta(0)) -> ColumnElement[datetime]: ...
