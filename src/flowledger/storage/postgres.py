"""The PostgreSQL backend (psycopg 3): many workers on many machines share one database.

Only what differs from SQLite lives here: the engine, the server clock, claims
that skip rows another worker holds, and LISTEN/NOTIFY instead of polling.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Select,
    create_engine,
    func,
    select,
    type_coerce,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from flowledger.errors import DatabaseUnreachableError, DatabaseUrlError, StorageError
from flowledger.logs import log_extra
from flowledger.storage.base import Row
from flowledger.storage.coalesce import Coalescer
from flowledger.storage.groupcommit import GroupCommitter
from flowledger.storage.lanes import Lane
from flowledger.storage.leasegroup import LeaseAnswer, LeaseWork
from flowledger.storage.pgleases import INDEX_ORDER_OFF, LeaseConnection, connect_params
from flowledger.storage.pgrounds import RoundWriter
from flowledger.storage.pgstarts import StartWriter
from flowledger.storage.pgwrites import SIGNAL_CHANNEL, PostgresBatchWriter, signal_heard
from flowledger.storage.schema import UTCDateTime
from flowledger.storage.sql import SQLStore
from flowledger.storage.sqlpart import guarded_read, writes

K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger(__name__)

#: The channel idle workers LISTEN on and writers NOTIFY when work became claimable.
WORK_CHANNEL = "flowledger_work"
_NOTIFY_WORK = f"NOTIFY {WORK_CHANNEL}"
#: Seconds before listening for signals again once the listener's connection failed.
SIGNAL_LISTEN_RETRY = 5.0
#: Any fixed number: the advisory lock that serializes schema upgrades across processes.
MIGRATION_LOCK = 0x666C6F77  # "flow"
CONNECT_TIMEOUT = 10
#: Seconds PostgreSQL lets a session of ours sit in an open transaction waiting for its
#: next statement before it ends the session. No transaction of ours waits on anything
#: but this process's own CPU, so only a frozen or paused process (SIGSTOP, a suspended
#: VM) leaves one open, and its row locks then held every other process's write to those
#: rows for as long as it stayed frozen: a cancel of its executions hung (a CI run).
IDLE_IN_TRANSACTION = 10

_HINTS = (
    ("password authentication failed", "check the user name and password in the URL"),
    ("no password supplied", "put the password in the URL: postgresql://user:password@host/db"),
    ('role "', "check the user name in the URL"),
    ('database "', "create it first with createdb, or fix its name in the URL"),
    ("Connection refused", "check the host and port, and that PostgreSQL is running"),
    ("could not translate host name", "check the host name in the URL"),
    ("timeout expired", "check the host, port and firewall"),
)


#: libpq's words for a server that is not there yet, or not taking connections now.
_PASSING = (
    "Connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "timeout expired",
    "server closed the connection unexpectedly",
    "Network is unreachable",
    "No such file or directory",  # its Unix socket, before it has started
)


def _passes(exc: BaseException) -> bool:
    """Whether a failed connection says the server is not there yet, or not taking
    connections now (SQLSTATE class 57P, or libpq's words for it when a connection
    failed before any SQLSTATE), rather than refusing this client (a password, a role,
    a database, a host name that does not resolve), which waiting does not mend."""
    state = getattr(exc, "sqlstate", None)
    if state is not None:
        return str(state).startswith(("57P", "08"))
    return any(words in str(exc) for words in _PASSING)


def psycopg_url(url: str) -> URL:
    """``postgres://``, ``postgresql://`` and ``postgresql+psycopg://`` all mean psycopg 3."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseUrlError(
            "cannot parse the PostgreSQL URL (expected "
            f"postgresql://user:password@host:port/database): {exc}"
        ) from exc
    if parsed.drivername not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise DatabaseUrlError(
            f"unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql://"
        )
    return parsed.set(drivername="postgresql+psycopg")


#: A start by name: the workflow's name, the version number asked for, if any, and
#: whether only its pushed version will do (``workflow_version_id``'s arguments).
VersionKey = tuple[str, int | None, bool]
#: Reader threads (each with its own connection) beside the one writer.
READERS = 3


class PostgresStore(SQLStore):
    def __init__(self, url: str, *, readers: int = READERS) -> None:
        parsed = psycopg_url(url)
        connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT}
        if "application_name" not in parsed.query:
            connect_args["application_name"] = "flowledger"
        given = parsed.query.get("options")  # kept beside ours (connect_args replace it)
        session = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION}s"
        connect_args["options"] = " ".join(
            p for p in ((given if isinstance(given, str) else " ".join(given or ())), session) if p
        )
        engine = create_engine(
            parsed,
            # Each lane thread holds one connection for the store's life (storage.lanes): one
            # writer, ``readers`` readers; the pool only refills them. Decision: one writer on
            # PostgreSQL too. Group commit already folds concurrent rounds into one
            # transaction, and leases/claims are short; a second writer would only add lock
            # waits between our own connections.
            pool_size=2 + readers,
            max_overflow=2,
            pool_pre_ping=True,
            connect_args=connect_args,
        )
        super().__init__(url, engine, readers=readers)
        # Reads by id are planned for the ids they are given, never prepared. psycopg
        # prepares a statement at its fifth use, and PostgreSQL then settles on one generic
        # plan for it: one made while the table was small kept its sequential scan as the
        # table grew, until autovacuum analyzed it (a minute or more). Seen on a new
        # database after 8,000 starts: every GET /executions/{id} scanned every execution
        # (4,600 → 2,900 req/s, PostgreSQL's CPU 4x; bench/api_bench.py). Decision: not
        # plan_cache_mode=force_custom_plan on every connection: planning each round's
        # statements made W1 15% and W3 20-27% slower (bench/compare.py --pg).
        self._read_options = {"prepare": False}
        # Rounds, lone or grouped, go from the event loop on a connection of their own
        # (storage.pgrounds); what that leaves commits on the writer lane's driver
        # connection (storage.pgwrites): psycopg begins a transaction by itself at the
        # first statement.
        #: Marks the signals this store NOTIFYs: its own listener leaves them out.
        self._origin = uuid.uuid4().hex
        self._batch_writer = batch_writer = PostgresBatchWriter(engine.dialect, self._origin)
        self._rounds = RoundWriter(self._connect_for_rounds, batch_writer)
        self._group = GroupCommitter(
            self._writer,
            lambda: self.conn,
            batch_writer.apply,
            psycopg.IntegrityError,
            self._trouble,
            _implicit_begin,
            driver_groups=True,
            on_loop=self._rounds.write,
        )
        # Decision: claims and releases on a connection of their own. A worker's one
        # writer spends most of its time waiting for WAL flushes of group commits; a
        # release per execution queued behind them (bench/pg_workers.py). Neither can
        # deadlock with the writer: a claim never waits (SKIP LOCKED, then the rows it
        # holds), a release locks rows of executions whose rounds are all written.
        # Lease renewals stay on the writer: they lock several rows one by one. Claims and
        # plain releases use the lane's own autocommit connection (storage.pgleases);
        # parking releases, which look for signals under a row lock, its SQLAlchemy one.
        self._leases = Lane("flowledger-leases", 1)
        self._lanes.insert(1, self._leases)
        self._display_url = make_url(url).render_as_string(hide_password=True)
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._lease_conn = LeaseConnection(self._connect_for_leases, engine.dialect)
        self._starts = StartWriter(self._connect_for_starts, self._row_insert, _NOTIFY_WORK)
        # Decision: concurrent document reads (``GET /executions/{id}``) fold into one
        # read of many executions per reader thread (storage.coalesce): PostgreSQL's own
        # work per statement, not ours, bounded that GET under load.
        width = max(readers, 1)  # reads at once: one per reader thread
        self._documents: Coalescer[str, tuple[Row, list[Row]]] = Coalescer(
            self._readers, self._guarded(self._read_executions), width
        )
        # The same for execution rows (``get_execution``): a drive reads its row first, and
        # executions driven together (``gather`` of start + drive) then take their leases,
        # and write their rounds, together.
        self._rows: Coalescer[str, Row] = Coalescer(
            self._readers, self._guarded(self._read_rows), width
        )
        # And for the version a start by name runs: many clients starting one workflow
        # at once (``POST /workflows/{name}/executions``) share one read of it.
        self._version_ids: Coalescer[VersionKey, str] = Coalescer(
            self._readers, self._guarded(self._read_version_ids), width
        )

    def _guarded(self, read_many: Callable[[Collection[K]], V]) -> Callable[[Collection[K]], V]:
        """A coalesced read as every ``@reads`` runs (storage.sqlpart.guarded_read): once
        more on a connection that died, the database's condition as StorageError."""
        return lambda keys: guarded_read(self, functools.partial(read_many, keys))

    async def read_execution(self, execution_id: str) -> tuple[Row, list[Row]] | None:
        return await self._documents.get(execution_id)

    async def get_execution(self, execution_id: str) -> Row | None:
        return await self._rows.get(execution_id)

    async def workflow_version_id(
        self, name: str, version: int | None = None, *, pushed_only: bool = False
    ) -> str | None:
        return await self._version_ids.get((name, version, pushed_only))

    def _read_version_ids(self, keys: Collection[VersionKey]) -> dict[VersionKey, str]:
        """The version each ``(name, version)`` names, in one read transaction."""
        found: dict[VersionKey, str] = {}
        with self.reading() as conn:
            for key in keys:
                statement = self._version_statement(*key)
                version_id = conn.exec_driver_sql(*statement).scalar() if statement else None
                if version_id is not None:
                    found[key] = str(version_id)
        return found

    def _read_rows(self, ids: Collection[str]) -> dict[str, Row]:
        """Execution rows by id: one statement, whatever the number of ids."""
        by_id, _ = self._many_reads()
        with self.reading():
            [rows] = self._driver_reads([(by_id, by_id.keys(list(ids)))])
        return {row["id"]: row for row in rows}

    def _read_executions(self, ids: Collection[str]) -> dict[str, tuple[Row, list[Row]]]:
        """Executions by id, each with its steps in ``seq`` order: two statements in one
        pipeline, whatever the number of ids, from one snapshot (``reading``)."""
        with self.reading():
            return self._documents_of(list(ids))

    def _in_index_order(self, conn: Connection) -> None:
        for setting in INDEX_ORDER_OFF:  # as the lease connection's session has them
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")

    @contextmanager
    def _one_snapshot(self, conn: Connection) -> Iterator[None]:
        # Under READ COMMITTED each statement sees what was committed when it began: a
        # round committed between a read's two statements would show its steps beside the
        # execution row from before it, a page beside a count from after it. A read
        # transaction is REPEATABLE READ, READ ONLY instead (it never fails to serialize),
        # said in the BEGIN psycopg sends anyway: no statement more. Set back at its end,
        # as the writer's connection reads too (the schema check) and then writes.
        driver = conn.connection.dbapi_connection
        assert isinstance(driver, psycopg.Connection)
        if driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            yield  # already in a transaction someone began: it is what it is
            return
        driver.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        driver.read_only = True
        try:
            yield
        finally:
            if not driver.closed and not driver.broken:
                driver.isolation_level = None
                driver.read_only = None

    def _driver_params(self) -> dict[str, Any]:
        _, params = self._engine.dialect.create_connect_args(self._engine.url)
        return dict(params)

    def _connect_for_leases(self) -> psycopg.Connection[Any]:
        params = {**self._driver_params(), "application_name": "flowledger-leases"}
        try:
            return psycopg.connect(**connect_params(params))
        except psycopg.OperationalError as exc:
            raise self._driver_connect_error(exc) from exc

    async def initialize(self) -> None:
        await super().initialize()
        # Opened now, like every lane's connection: the first claim pays no set-up.
        await self._leases.run(self._lease_conn.open)

    async def _create_small_execution(self, execution: Row, events_: list[Row]) -> str:
        # From the event loop, on the starts' own connection (storage.pgstarts); what it
        # leaves (a trigger key, a conflict, a failure) takes the general path.
        if await self._starts.create(execution, events_):
            return str(execution["id"])
        return await super()._create_small_execution(execution, events_)

    async def _connect_for_starts(self) -> psycopg.AsyncConnection[Any]:
        return await self._connect_on_loop("flowledger-starts")

    async def _connect_for_rounds(self) -> psycopg.AsyncConnection[Any]:
        return await self._connect_on_loop("flowledger-rounds")

    async def _connect_on_loop(self, name: str) -> psycopg.AsyncConnection[Any]:
        """An asyncio connection in autocommit, for storage.pgloop's writes."""
        params = {"application_name": name, **self._driver_params()}
        return await psycopg.AsyncConnection.connect(
            **params, connect_timeout=CONNECT_TIMEOUT, autocommit=True
        )

    def _apply_leases(self, works: list[LeaseWork]) -> list[LeaseAnswer]:
        # On the leases lane (SQLStore._submit_leases: PostgreSQL never writes inline). New
        # executions first, durably, on the lane's SQLAlchemy connection; then the leases on
        # its own connection, which does not wait for the disk (storage.pgleases).
        created = iter(self._create_many(works) if any(w.create for w in works) else [])
        answers = self._lease_conn.apply(works)
        for work, answer in zip(works, answers, strict=True):
            if work.create is not None:
                answer.created = next(created)
        return answers

    async def release_lease(
        self,
        execution_id: str,
        epoch: int,
        wake_at: datetime | None = None,
        *,
        failed: bool = False,
    ) -> None:
        if wake_at is not None:  # parking looks for signals under a row lock: the full path
            await super().release_lease(execution_id, epoch, wake_at, failed=failed)
            return
        await self._leases.run(lambda: self._lease_conn.release(execution_id, epoch))

    def _connect_error(self, exc: DBAPIError) -> StorageError:
        return self._driver_connect_error(exc if exc.orig is None else exc.orig)

    def _driver_connect_error(self, exc: BaseException) -> StorageError:
        # libpq's text is precise but spread over lines and tabs: make it one line.
        lines = [re.sub(r"\s+", " ", line).strip() for line in str(exc).splitlines()]
        detail = ". ".join(line.rstrip(".") for line in lines if line)
        detail = detail.removeprefix("connection failed: ")
        hint = next((h for needle, h in _HINTS if needle in detail), None)
        message = f"cannot connect to PostgreSQL at {self._display_url}: {detail}"
        message = f"{message} ({hint})" if hint else message
        return (DatabaseUnreachableError if _passes(exc) else StorageError)(message)

    def _lock_schema(self) -> None:
        # Held until the upgrade transaction ends: a second process waits, then finds head.
        self.conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))

    def _sql_now(self, plus: timedelta = timedelta(0)) -> ColumnElement[datetime]:
        # clock_timestamp, not now(): now() is frozen at the start of the transaction.
        now = func.clock_timestamp(type_=DateTime(timezone=True))
        return type_coerce(now + plus if plus else now, UTCDateTime)

    def _lease_only_commit(self) -> None:
        """Decision: claims and releases commit without waiting for the WAL flush
        (``synchronous_commit=off`` for that transaction only). With 16 executions a worker,
        a release per execution and a claim per batch, each waiting for its own flush on
        the one writer connection, were over half the writer's time (bench/pg_workers.py).
        Nothing durable is lost in a crash: the WAL is written in order, so the next
        synchronous commit (the execution's first round under the claimed epoch, which
        comes before any handler runs) flushes the claim with it; a release lost in a crash
        leaves a lease that expires and is taken over, as when the worker itself crashes.
        Others see either at once: visibility does not wait for the flush."""
        self.conn.exec_driver_sql("SET LOCAL synchronous_commit = off")

    _lock_for_share = " FOR SHARE"

    def _claim_query(self, query: Select[tuple[str]]) -> Select[tuple[str]]:
        return query.with_for_update(skip_locked=True)

    def _wake_with_this_commit(self) -> None:
        self.conn.exec_driver_sql(_NOTIFY_WORK)

    @writes
    def notify_work(self) -> None:
        with self.conn.begin():
            self._wake_with_this_commit()

    async def watch_signals(self, heard: Callable[[str], None]) -> None:
        # A connection of its own: the work listener's waits take every notification.
        while True:
            try:
                listener = await psycopg.AsyncConnection.connect(
                    **{"application_name": "flowledger-signals", **self._driver_params()},
                    connect_timeout=CONNECT_TIMEOUT,
                    autocommit=True,
                )
                try:
                    await listener.execute(f"LISTEN {SIGNAL_CHANNEL}")
                    async for note in listener.notifies():
                        execution_id = signal_heard(note.payload, self._origin)
                        if execution_id is not None:  # not one of ours: told already
                            heard(execution_id)
                finally:
                    await listener.close()
            except psycopg.Error as exc:  # meanwhile the holders look at their poll
                log.warning(
                    "listening for signals failed, trying again in %gs: %s",
                    SIGNAL_LISTEN_RETRY,
                    exc,
                    extra=log_extra("listen"),
                )
            await asyncio.sleep(SIGNAL_LISTEN_RETRY)

    async def wait_for_work(self, timeout: float, *, skip: Sequence[str] = ()) -> None:
        # The listener stays open between calls, so a NOTIFY sent while the caller was
        # busy is kept in its backlog and ends the next wait at once. ``skip`` is not
        # looked at: a NOTIFY comes with work made, not with every commit (SQLite's look).
        try:
            listener = await self._listen()
            async for _ in listener.notifies(timeout=timeout, stop_after=1):
                break
            # A burst of notifications needs one wake-up, not one per NOTIFY.
            async for _ in listener.notifies(timeout=0):
                pass
        except psycopg.Error as exc:
            log.warning(
                "listening for work failed, polling instead: %s", exc, extra=log_extra("listen")
            )
            await self._drop_listener()
            await asyncio.sleep(timeout)

    async def _listen(self) -> psycopg.AsyncConnection[Any]:
        if self._listener is None or self._listener.closed:
            params = self._driver_params()
            listener = await psycopg.AsyncConnection.connect(
                **{"application_name": "flowledger-listener", **params},
                connect_timeout=CONNECT_TIMEOUT,
                autocommit=True,
            )
            try:
                await listener.execute(f"LISTEN {WORK_CHANNEL}")
            except BaseException:  # cancelled mid-query: the connection is unusable
                await listener.close()
                raise
            self._listener = listener
        return self._listener

    async def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()

    async def close(self) -> None:
        await self._drop_listener()
        await self._starts.close()
        await self._group.settled()
        await self._rounds.close()
        await super().close()
        self._lease_conn.close()  # after the lanes: no claim or release is running


def _implicit_begin(driver: object) -> None:
    """psycopg (not in autocommit) opens a transaction with the first statement."""
