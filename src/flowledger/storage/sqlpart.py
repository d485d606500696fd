"""What every SQL mixin of the store needs: the connection, the clock, read transactions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, Table, or_

#: Set on a connection's ``info`` for the next BEGIN: a read needs no write lock.
READ_ONLY = "flowledger_read_only"


class SQLPart(ABC):
    @property
    @abstractmethod
    def conn(self) -> Connection: ...

    @abstractmethod
    def _sql_now(self, plus: timedelta = timedelta(0)) -> ColumnElement[datetime]:
        """The database clock as a SQL expression."""

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A transaction that only reads. SQLite then begins it DEFERRED: it takes no write
        lock, so readers never queue behind writers (WAL), and a process stopped while
        reading (SIGSTOP, a debugger) blocks nobody. Writes need ``conn.begin()``."""
        conn = self.conn
        conn.info[READ_ONLY] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop(READ_ONLY, None)

    def _takeable(self, table: Table, owner: str, steal_from: str | None) -> ColumnElement[bool]:
        """A lease row ``owner`` may take: free, lapsed, already its own, or held by a
        process known to be dead (``steal_from``). Used as a compare-and-set condition."""
        holders = [table.c.lease_owner == owner]
        if steal_from is not None:
            holders.append(table.c.lease_owner == steal_from)
        return or_(
            table.c.lease_owner.is_(None), table.c.lease_expires_at < self._sql_now(), *holders
        )
