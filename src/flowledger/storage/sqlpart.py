"""What every SQL mixin of the store needs: the connection, the clock, read transactions,
and the two decorators that run a method's body off the event loop (see storage.lanes)."""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import ColumnElement, Connection, Table, and_, or_
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from flowledger.config import SQLITE_BUSY_TIMEOUT_MS
from flowledger.errors import StorageError
from flowledger.storage.lanes import NOT_HERE, Lane

#: Set on a connection's ``info`` for the next BEGIN: a read needs no write lock.
READ_ONLY = "flowledger_read_only"

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="SQLPart")

Async = Callable[Concatenate[S, P], Coroutine[Any, Any, R]]


class DriverErrors:
    """``with DriverErrors(base, sql):`` around statements sent to the driver directly:
    its errors (``base``, the driver's base error) come out as SQLAlchemy raises them, so
    callers catch DBAPIError whichever way a statement went. A class, not a generator
    context manager: it wraps a write transaction's BEGIN."""

    __slots__ = ("_base", "_sql")

    def __init__(self, base: type[Exception], sql: str | None = None) -> None:
        self._base = base
        self._sql = sql

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        if isinstance(exc, self._base):
            raise DBAPIError.instance(self._sql, None, exc, self._base) from exc


class DatabaseTrouble:
    """``with DatabaseTrouble(doing, trouble):`` around a store call's body: what the
    database's condition makes fail (``trouble(exc)`` says which: a lock held past the busy
    timeout, a server refusing or dropping connections or restarting) comes out as
    StorageError, "the database could not {doing}: …", the driver's error its cause. The
    runtime tells a condition to report in a line from a bug by that type alone
    (runtime.leases); anything else (a constraint, a mistake in SQL) goes on as raised.
    A class with slots, like DriverErrors: free unless something is raised."""

    __slots__ = ("_doing", "_trouble")

    def __init__(self, doing: str, trouble: Callable[[BaseException], bool]) -> None:
        self._doing = doing
        self._trouble = trouble

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, trace: object) -> None:
        if exc is not None and not isinstance(exc, StorageError) and self._trouble(exc):
            detail = trouble_detail(exc)
            raise StorageError(f"the database could not {self._doing}: {detail}") from exc


def reads(body: Callable[Concatenate[S, P], R]) -> Async[S, P, R]:
    """The method runs ``body`` on a reader thread (its own connection) and awaits it.

    For bodies that only read, inside ``self.reading()``: they never wait for the writer.
    """

    @functools.wraps(body)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._readers.run(
            functools.partial(guarded_read, self, functools.partial(body, self, *args, **kwargs))
        )

    return call


def guarded_read(store: SQLPart, job: Callable[[], R]) -> R:
    """``job`` (a read) on the calling lane thread, once more when its connection had died
    (the database restarted since this thread last used it: SQLAlchemy has dropped that
    connection, and the next use opens a new one); what still fails for the database's
    condition comes out as StorageError (storage_unavailable, not an internal error).
    Reads change nothing, so a second try is always safe."""
    try:
        return job()
    except DBAPIError as exc:
        failed = exc
        if exc.connection_invalidated:
            try:
                return job()
            except DBAPIError as again:
                failed = again
        trouble = trouble_error(store, failed)
        if trouble is None:
            raise failed from failed.__cause__  # as it was raised
        raise trouble from failed


def trouble_error(store: SQLPart, exc: DBAPIError) -> StorageError | None:
    """``exc`` as StorageError when it is the database's condition (DatabaseTrouble's
    rule); None when it is not (a constraint, a mistake in SQL: raised as it is)."""
    if not store._trouble(exc):
        return None
    detail = driver_message(exc)
    if database_locked(exc):  # it answered: its file is locked
        return StorageError(trouble_detail(exc))
    if any(words in detail for words in _NO_WRITES):  # it answered: no room, or read-only
        return StorageError(f"the database answers but cannot take writes: {detail}")
    return StorageError(f"the database does not answer: {detail}")


#: What SQLite and PostgreSQL say of a write refused for want of room or permission
#: (reads still work: "does not answer" sent people looking for a dead server).
_NO_WRITES = (
    "database or disk is full",
    "No space left on device",
    "readonly database",
    "read-only transaction",
)


#: What SQLite says of a write lock held by another connection past the busy timeout.
_LOCKED = ("database is locked", "database is busy")


def database_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's write lock held by another connection past the busy
    timeout."""
    return driver_message(exc) in _LOCKED


def trouble_detail(exc: BaseException) -> str:
    """What the database's condition ``exc`` is, said for a person: the driver's first
    line, or for a SQLite file locked past the busy timeout, who may hold it (that
    "database is locked" read as "the database does not answer")."""
    detail = driver_message(exc)
    if not database_locked(exc):
        return detail
    return (
        f"the SQLite database stayed locked by another process for "
        f"{SQLITE_BUSY_TIMEOUT_MS // 1000} s ({detail}): something holds its write lock "
        "(an open transaction in a sqlite3 shell, a backup, a stuck process)"
    )


def driver_message(exc: BaseException) -> str:
    """The first line of what the driver said (SQLAlchemy wraps it in a DBAPIError whose
    own text adds the SQL and a link), or the error's type when it said nothing."""
    driver = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return (str(driver).strip().splitlines() or [type(driver).__name__])[0]


#: PostgreSQL's SQLSTATEs for a table and a column that do not exist.
_MISSING_SQLSTATES = ("42P01", "42703")
#: SQLite's words for the same.
_MISSING_WORDS = ("no such table", "no such column", "has no column named")


def schema_mismatch(exc: BaseException) -> bool:
    """Whether ``exc`` says a table or column this flowledger uses is not in the database:
    a schema another flowledger version made, which ``flowledger db upgrade`` may mend;
    not the database's condition (a full disk, a lock), which it would not."""
    driver = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if getattr(driver, "sqlstate", None) in _MISSING_SQLSTATES:
        return True
    message = driver_message(exc)
    return any(words in message for words in _MISSING_WORDS)


def writes(body: Callable[Concatenate[S, P], R]) -> Async[S, P, R]:
    """The method runs ``body`` on the writer thread, after the writes asked for before it.

    Leases, claims and the clock go here too: the heartbeat never queues behind a read.
    """

    @functools.wraps(body)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await self._writer.run(functools.partial(body, self, *args, **kwargs))
        except DBAPIError as exc:  # not tried again: a lost commit may have been made
            trouble = trouble_error(self, exc)
            if trouble is None:
                raise
            raise trouble from exc

    return call


def point_read(body: Callable[Concatenate[S, P], R]) -> Async[S, P, R]:
    """``@reads`` for one row read by its primary key: the store may run it right here on
    the loop when that cannot wait (``_inline_read``, see storage.lanes), else it goes to
    a reader thread like any read."""

    @functools.wraps(body)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        job = functools.partial(body, self, *args, **kwargs)
        try:
            done = self._inline_read(job)
        except DBAPIError as exc:  # SQLite's own file, on the loop: nothing to reconnect
            trouble = trouble_error(self, exc)
            if trouble is None:
                raise
            raise trouble from exc
        if done is not NOT_HERE:
            return cast(R, done)
        return await self._readers.run(functools.partial(guarded_read, self, job))

    return call


def small_write(body: Callable[Concatenate[S, P], R]) -> Async[S, P, R]:
    """``@writes`` for a write of a row or two (a lease, a new execution): the store may run
    it right here on the loop when that cannot wait (``_inline_write``, see storage.lanes),
    else it goes to the writer thread like any write."""
    return _inline_write_or(body, lambda store: store._writer)


def lease_write(body: Callable[Concatenate[S, P], R]) -> Async[S, P, R]:
    """``@small_write`` for a claim or a release: where the store has a lane for those
    (``_leases``: PostgreSQL) they run there, beside the round commits instead of queueing
    behind them; elsewhere ``_leases`` is the writer itself."""
    return _inline_write_or(body, lambda store: store._leases)


def _inline_write_or(
    body: Callable[Concatenate[S, P], R], lane: Callable[[SQLPart], Lane]
) -> Async[S, P, R]:
    @functools.wraps(body)
    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        job = functools.partial(body, self, *args, **kwargs)
        try:
            done = self._inline_write(job)
            if done is not NOT_HERE:
                return cast(R, done)
            return await lane(self).run(job)
        except DBAPIError as exc:  # as @writes: said, not tried again
            trouble = trouble_error(self, exc)
            if trouble is None:
                raise
            raise trouble from exc

    return call


class SQLPart(ABC):
    #: Where ``@writes`` and ``@reads`` bodies run (the same lane for an in-memory SQLite).
    _writer: Lane
    _readers: Lane
    #: Where ``@lease_write`` bodies run: the writer, unless the store has a lane for them.
    _leases: Lane
    #: A timestamp as the driver takes it in fixed SQL text (its stored form).
    timestamp_param: Callable[[datetime], Any]

    #: The driver's errors of the database's condition, for statements sent to it directly
    #: (PEP 249's OperationalError and InterfaceError of ``Engine.dialect.loaded_dbapi``).
    _driver_trouble: tuple[type[Exception], ...] = ()

    #: When a call last failed for the database's condition (``time.monotonic()``), and
    #: what the driver said: readiness probes with a write while it is recent
    #: (storage.readiness).
    _last_trouble: tuple[float, str] | None = None

    def _trouble(self, exc: BaseException) -> bool:
        """Whether ``exc``, a call's failure, is the database's condition, not a mistake
        (DatabaseTrouble); noted for readiness when it is."""
        if not self._is_trouble(exc):
            return False
        self._last_trouble = (time.monotonic(), driver_message(exc))
        return True

    def _is_trouble(self, exc: BaseException) -> bool:
        """``_trouble``'s rule: SQLAlchemy's OperationalError and InterfaceError, or the
        driver's own. PostgreSQL raises those for its conditions only (connections,
        resources, a shutdown); a dialect whose driver says more with them narrows this
        (SQLiteStore)."""
        return isinstance(exc, (OperationalError, InterfaceError, *self._driver_trouble))

    def _inline_read(self, job: Callable[[], object]) -> object:
        """Run a ``@point_read`` body on the calling thread, or return NOT_HERE (the
        default: always; SQLiteStore overrides it)."""
        return NOT_HERE

    def _inline_write(self, job: Callable[[], object]) -> object:
        """Run a ``@small_write`` body on the calling thread, or return NOT_HERE (the
        default: always; SQLiteStore overrides it)."""
        return NOT_HERE

    @property
    @abstractmethod
    def conn(self) -> Connection:
        """The connection of the calling thread (each lane thread has its own)."""

    @abstractmethod
    def _sql_now(self, plus: timedelta = timedelta(0)) -> ColumnElement[datetime]:
        """The database clock as a SQL expression."""

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A transaction that only reads, every statement of it from one snapshot. SQLite
        then begins it DEFERRED: it takes no write lock, so readers never queue behind
        writers (WAL), and a process stopped while reading (SIGSTOP, a debugger) blocks
        nobody. Writes need ``conn.begin()``."""
        conn = self.conn
        conn.info[READ_ONLY] = True
        try:
            with self._one_snapshot(conn), conn.begin():
                yield conn
        finally:
            conn.info.pop(READ_ONLY, None)

    def _in_index_order(self, conn: Connection) -> None:  # noqa: B027 - a hook, empty here
        """Inside a transaction that searches an index for its oldest rows (a prune's
        search): keep the database walking that index in its order. The default does
        nothing (SQLite's query names what it needs); PostgresStore turns sorts off."""

    def _one_snapshot(self, conn: Connection) -> AbstractContextManager[object]:
        """Around a read transaction (``reading``), what makes all its statements read one
        snapshot. The default does nothing: a SQLite transaction always reads one."""
        return nullcontext()

    def _takeable(self, table: Table, owner: str, steal_from: str | None) -> ColumnElement[bool]:
        """A lease row ``owner`` may take: free, lapsed, already its own, or held by a
        process known to be dead (``steal_from``). Used as a compare-and-set condition."""
        holders = [table.c.lease_owner == owner]
        if steal_from is not None:
            holders.append(table.c.lease_owner == steal_from)
        return or_(
            table.c.lease_owner.is_(None), table.c.lease_expires_at < self._sql_now(), *holders
        )


def older_than(
    at: ColumnElement[datetime], key: ColumnElement[Any], before: tuple[datetime, str]
) -> ColumnElement[bool]:
    """Keyset pagination, newest first: the rows strictly after ``before`` (a page's last
    ``(at, key)``) in the order ``at DESC, key DESC``."""
    when, last = before
    return or_(at < when, and_(at == when, key < last))
