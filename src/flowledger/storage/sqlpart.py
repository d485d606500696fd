"""What every SQL mixin of the store needs: the connection, the clock, read transactions,
and the two decorators that run a method's body off the event loop (see storage.lanes)."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, Connection, Table, or_

from flowledger.storage.lanes import Lane

#: Set on a connection's ``info`` for the next BEGIN: a read needs no write lock.
READ_ONLY = "flowledger_read_only"

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="SQLPart")

Async = Callable[Concatenate[S, P], Coroutine[Any, Any, R]]


def reads(body: Callable[Concatenate[S, P], R]) -> Async[S, P, R]:
    """The method runs ``body`` on a reader thread (its own connection) and awaits it.

    For bodies that only read, inside ``self.reading()``: they never wait for the writer.
    """

    @functools.wraps(body)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._readers.run(functools.partial(body, self, *args, **kwargs))

    return call


def writes(body: Callable[Concatenate[S, P], R]) -> Async[S, P, R]:
    """The method runs ``body`` on the writer thread, after the writes asked for before it.

    Leases, claims and the clock go here too: the heartbeat never queues behind a read.
    """

    @functools.wraps(body)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._writer.run(functools.partial(body, self, *args, **kwargs))

    return call


class SQLPart(ABC):
    #: Where ``@writes`` and ``@reads`` bodies run (the same lane for an in-memory SQLite).
    _writer: Lane
    _readers: Lane

    @property
    @abstractmethod
    def conn(self) -> Connection:
        """The connection of the calling thread (each lane thread has its own)."""

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
