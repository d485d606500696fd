"""The embedded SQLite backend: WAL, one writer at a time, durable commits."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from flowledger.config import SQLITE_BUSY_TIMEOUT_MS, SQLITE_SYNCHRONOUS
from flowledger.errors import MissingDatabaseError, StorageError
from flowledger.storage.base import Batch, Row
from flowledger.storage.coalesce import Coalescer
from flowledger.storage.groupcommit import lone_round_rows
from flowledger.storage.lanes import NOT_HERE, Lane
from flowledger.storage.leasegroup import oldest_runnable_sql, skip_params, skip_slots
from flowledger.storage.sql import SQLStore
from flowledger.storage.sqlpart import READ_ONLY, DriverErrors, driver_message, point_read
from flowledger.timeutil import utcnow

# NORMAL in WAL mode survives any process crash (kill -9); FULL also survives power loss
# (FLOWLEDGER_SQLITE_SYNCHRONOUS, see flowledger.config: read by the caller, passed in here).


#: How often an idle worker looks whether another process committed (wait_for_work): soon
#: after work was found, then less often, down to CHANGE_POLL_MAX. Each look wakes the
#: process, ~0.3 ms of CPU on this project's VMs: twenty a second tripled an idle worker's
#: CPU (docs/performance.md).
CHANGE_POLL = 0.05
CHANGE_POLL_MAX = 0.1

#: Reader threads (each with its own connection) beside the one writer. WAL readers never
#: wait for the writer; three let a slow read (a dashboard's query) leave room for others.
READERS = 3

#: Write transactions between two background checkpoints. SQLite's own checkpoint runs
#: inside the COMMIT that crosses 1,000 WAL pages and pays an fsync there: in the
#: 1,000-step chain benchmark those commits took 4-10 ms against a median of 0.09 ms,
#: doubling the mean commit. A PASSIVE checkpoint on another connection moves that work
#: out of every commit (the writer keeps appending meanwhile). ~4-7 pages per round: 200
#: writes is about SQLite's own 1,000-page cadence.
CHECKPOINT_EVERY = 200
#: WAL pages after which a committing writer still checkpoints itself (SQLite's
#: autocheckpoint), should the background checkpoints fall behind (10 MB at PAGE_SIZE,
#: 40 MB in a file of 4 KiB pages).
WAL_BACKSTOP = 10_000

#: The page size of a new database file (an existing file keeps its own). A commit writes
#: every page it changed to the WAL, whole: a chain's round changes six or seven (the step
#: row and its three indexes, two events and their key), each a few hundred bytes of change
#: in a 4 KiB page. At 1 KiB its own SQL costs ~20% less and a W1 step ~10% less
#: (211 -> 189 us, 9 interleaved runs; 2 KiB: 206 us); large values take more overflow
#: pages, read once per execution.
PAGE_SIZE = 1024

#: How long a statement waits for another process's write lock.
BUSY_TIMEOUT_MS = SQLITE_BUSY_TIMEOUT_MS
#: Rows (steps and events) of the largest round, or group of rounds, committed on the
#: loop (_commit_inline).
INLINE_MAX_ROWS = 16

#: How long opening a brand-new database waits for another process that is creating it.
WAL_SWITCH_WAIT = 30.0

# The sqlite3 driver sends every parameter that is not exactly an int, float or str through
# its adaptation protocol before binding it, None included: no adapter found, it looks up
# ``__adapt__`` on its protocol class, whose miss formats an AttributeError message, then
# ``__conform__`` on None. A round binds about fifteen NULLs per step of a chain; that came
# to ~3 us a row of six NULLs (bench: 6.7 -> 3.4 us). An adapter registered for None is
# found in the registry at once and hands None back (a C call), which binds as NULL the
# same as before. Process-wide, like every sqlite3 adapter; nothing else changes.
sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL. On a new file another process may be migrating it right now; SQLite
    then answers "locked" at once (its busy handler is skipped for a journal-mode switch),
    so wait for that process here instead of failing the open."""
    deadline = time.monotonic() + WAL_SWITCH_WAIT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SQLiteStore(SQLStore):
    def __init__(
        self,
        url: str,
        *,
        synchronous: str = "NORMAL",
        readers: int = READERS,
        inline_commits: bool = True,
        create: bool = True,
    ) -> None:
        if synchronous.upper() not in SQLITE_SYNCHRONOUS:
            raise StorageError(f"unknown SQLite synchronous setting {synchronous!r}")
        synchronous = synchronous.upper()
        parsed = make_url(url)
        database = parsed.database or ""
        memory = not database or database == ":memory:"
        if not memory:
            folder = Path(database).expanduser().resolve().parent
            if not create and not Path(database).expanduser().is_file():
                raise MissingDatabaseError(
                    f"no database at {Path(database).expanduser().resolve()} "
                    "(set --db or FLOWLEDGER_DB)"
                )
            if not folder.is_dir():
                raise StorageError(f"cannot open {url}: the folder {folder} does not exist")
            _check_writable(url, Path(database).expanduser().resolve())
        # File databases checkpoint on a thread of their own (see CHECKPOINT_EVERY).
        checkpointer = None if memory else Lane("flowledger-checkpoint", 1)
        self._writes = 0
        self._checkpoint_pending = False
        #: The writer's driver connection while its busy timeout is 0, left so by an inline
        #: write (_writer_idle) until the writer thread begins its next transaction on it:
        #: setting it back and forth around every inline round cost two statements a round.
        self._waitless: Any = None
        #: An inline call holds the writer's connection (its transactions must not wait).
        self._inline_now = False
        #: The writer connection's ``PRAGMA data_version`` when last looked at: it changes
        #: when another connection (another process) commits, never for its own writes.
        self._seen_version: int | None = None
        #: Work made claimable in this process since the last wait (``notify_work``), and
        #: the wait to end when it is (one at a time: a store's worker).
        self._work_made = False
        self._work_waiter: asyncio.Future[None] | None = None
        #: Seconds between two looks at other processes' commits (CHANGE_POLL).
        self._look_every = CHANGE_POLL
        engine = create_engine(
            url,
            # Each lane thread keeps one connection for the store's life (file: a pool as
            # large as the lanes; memory: StaticPool, the one connection all share).
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
            # The writer, the readers, the loop's point-read connection, the checkpointer.
            **({} if memory else {"pool_size": 3 + readers, "max_overflow": 4}),
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN IMMEDIATE is ours to emit.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            # Before WAL: a new file's page size is fixed by its first write.
            cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")
            _enable_wal(cursor)
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            if not memory:
                cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # A read: a snapshot, no write lock (WAL). A write: IMMEDIATE takes the write
            # lock up front, so no deadlock when two processes upgrade.
            sql = "BEGIN" if conn.info.pop(READ_ONLY, False) else "BEGIN IMMEDIATE"
            if sql != "BEGIN" and checkpointer is not None:
                self._count_write(checkpointer)
            driver = conn.connection.dbapi_connection
            if driver is self._waitless and not self._inline_now:
                self._wait_again(driver)
            # Straight to the driver: SQLAlchemy's execution context costs ~6 us per
            # transaction here, a third of what the hop to the writer thread costs.
            with DriverErrors(sqlite3.Error, sql):
                driver.execute(sql)

        # In memory, the database is one connection: every call takes turns on the writer
        # thread (readers=0), as it did on the loop before.
        def begin_write(driver: Any) -> None:
            # The lone-round commit's own BEGIN (groupcommit: SQLAlchemy's is skipped there).
            if driver is self._waitless:  # only the writer thread calls this one
                self._wait_again(driver)
            self._statements(driver).execute("BEGIN IMMEDIATE")
            if checkpointer is not None:
                self._count_write(checkpointer)

        # Decision: the driver-transaction fast path is SQLite's only; on PostgreSQL a
        # round trip dwarfs the few microseconds it saves.
        def begun(_driver: Any) -> None:
            if checkpointer is not None:
                self._count_write(checkpointer)

        self._begun = begun

        def commit_write(driver: Any) -> None:
            # Not the driver's commit(): sqlite3 (3.11) parses "COMMIT" anew on each call,
            # a statement on a cursor comes from its prepared-statement cache.
            self._statements(driver).execute("COMMIT")

        #: The writer connection's cursor for BEGIN and COMMIT, and the connection it is of.
        self._statement_cursor: tuple[Any, Any] | None = None
        self._writer_conn: Connection | None = None
        #: The connection point reads run on inline, and the one thread that may use it
        #: (the loop's, set by ``initialize``); see _inline_read.
        self._loop_conn: Connection | None = None
        self._loop_thread: int | None = None
        inline = inline_commits and not memory and synchronous == "NORMAL"
        #: Small writes (leases, a new execution) may run on the loop: see _inline_write.
        self._inline_writes = inline
        self._inline_reads = inline_commits and not memory
        super().__init__(
            url,
            engine,
            readers=0 if memory else readers,
            driver_begin=begin_write,
            inline=self._commit_inline if inline else None,
            driver_commit=commit_write,
        )
        if checkpointer is not None:
            self._lanes.append(checkpointer)
        # Decision: documents asked for in the same turn of the loop (executions that end
        # together, or concurrent GETs) are read together (storage.coalesce), on the loop
        # when that cannot wait: one transaction and two statements for all of them.
        self._documents: Coalescer[str, tuple[Row, list[Row]]] = Coalescer(
            self._readers, self._read_executions, max(readers, 1), inline=self._inline_read
        )

    async def initialize(self) -> None:
        await super().initialize()
        self._writer_conn = await self._writer.run(lambda: self.conn)
        if self._inline_reads:
            # Opened on the writer thread (connecting is file I/O: not on the loop), then
            # used only by the loop's thread (check_same_thread is off for every connection).
            self._loop_conn = await self._writer.run(self._open_loop_conn)
            self._loop_thread = threading.get_ident()

    def _open_loop_conn(self) -> Connection:
        try:
            conn = self._engine.connect()
        except Exception as exc:
            raise StorageError(f"cannot open database {self.url}: {driver_message(exc)}") from exc
        with self._opened_lock:
            self._opened.append(conn)
        driver = conn.connection.dbapi_connection
        assert driver is not None
        # Never wait for a lock here: a point read that would wait goes to a reader thread.
        driver.execute("PRAGMA busy_timeout=0")
        return conn

    async def close(self) -> None:
        self._loop_conn = None  # closed with the others by SQLStore.close
        self._writer_conn = None
        await super().close()

    def _release_cursors(self) -> None:
        super()._release_cursors()
        cached, self._statement_cursor = self._statement_cursor, None
        if cached is not None:
            cached[1].close()

    @contextmanager
    def _on(self, conn: Connection) -> Iterator[None]:
        """Make ``self.conn`` answer ``conn`` on this thread for a moment (the body of a
        store method runs on whatever ``self.conn`` is)."""
        local = self._local
        before = getattr(local, "conn", None)
        local.conn = conn
        try:
            yield
        finally:
            if before is None:
                del local.conn
            else:
                local.conn = before

    @point_read
    def workflow_version_id(
        self, name: str, version: int | None = None, *, pushed_only: bool = False
    ) -> str | None:
        """One statement is its own snapshot: sent bare on the driver, which is in
        autocommit (``_on_connect``), with no BEGIN and COMMIT around it. Every start by
        name pays this lookup; SQLAlchemy's transaction and result around it were two
        thirds of it, and a sixth of an HTTP start (py-spy under bench/api_bench.py)."""
        statement = self._version_statement(name, version, pushed_only)
        if statement is None:
            return None
        driver = self.conn.connection.dbapi_connection
        assert driver is not None
        with DriverErrors(sqlite3.Error, statement[0]):
            row = driver.execute(*statement).fetchone()
        return None if row is None else str(row[0])

    def _is_trouble(self, exc: BaseException) -> bool:
        # sqlite3 raises OperationalError for mistakes in SQL too (no such table, a syntax
        # error): its result code tells the file's and the machine's conditions apart.
        return super()._is_trouble(exc) and _sqlite_code(exc) in _TROUBLE_CODES

    def _inline_read(self, job: Callable[[], object]) -> object:
        """A ``@point_read`` (one row by primary key) right here on the loop, when it
        cannot wait; NOT_HERE sends it to a reader thread. The rule and why it holds are
        in storage.lanes ("Inline point reads")."""
        conn = self._loop_conn
        if conn is None or threading.get_ident() != self._loop_thread:
            return NOT_HERE
        try:
            with self._on(conn):
                return job()
        except DBAPIError as exc:
            if _would_wait(exc):  # busy_timeout=0 answered at once: wait on a thread
                return NOT_HERE
            raise

    def _inline_write(self, job: Callable[[], object]) -> object:
        """A ``@small_write`` (a lease, a new execution) right here on the loop, under the
        rule of _commit_inline: the writer thread idle (its lock taken, so this shares its
        connection and overtakes nothing), SQLite's write lock free at once (busy timeout
        0), synchronous=NORMAL (no fsync), no checkpoint in it. NOT_HERE otherwise."""
        if not self._inline_writes:
            return NOT_HERE
        with self._writer_idle() as conn:
            if conn is None:
                return NOT_HERE
            try:
                with self._on(conn):
                    return job()
            except DBAPIError as exc:
                # Refused at BEGIN IMMEDIATE (another process writes): nothing was written,
                # and the transaction was rolled back; the writer thread waits for the lock.
                if _would_wait(exc):
                    return NOT_HERE
                raise
        return NOT_HERE  # unreachable; mypy wants a return after the with

    @contextmanager
    def _writer_idle(self) -> Iterator[Connection | None]:
        """The writer's connection with its lock held and busy_timeout 0, when the writer
        thread is idle this instant; None when it is not (or not started)."""
        conn = self._take_writer()
        try:
            yield conn
        finally:
            if conn is not None:
                self._give_writer()

    async def notify_work(self) -> None:
        # No channel between processes: this one's waiting workers. The others see the
        # commit that made the work (wait_for_work).
        self._wake_workers_here()

    def _wake_workers_here(self) -> None:
        self._work_made = True
        if self._work_waiter is not None:
            _wake(self._work_waiter)

    async def wait_for_work(self, timeout: float, *, skip: Sequence[str] = ()) -> None:
        """Until work is made in this process (``notify_work``), another process commits
        something claimable (a ``flowledger start`` beside a ``flowledger worker``: looked
        at every CHANGE_POLL to CHANGE_POLL_MAX seconds, a read of SQLite's shared memory,
        and a query only when that changed), or ``timeout``: timers come due with no
        commit, so the caller still looks for work at least that often. Work made while
        nobody waited ends the next wait, like PostgreSQL's NOTIFY backlog. What
        another process commits of the workflow versions in ``skip`` is not work here:
        a backlog this process cannot run would have it claim (a write) at every look."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # One future and one timer a look, not asyncio.wait_for's task: an idle worker
        # looks twenty times a second, for as long as it runs.
        while not self._work_made:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            waiter = self._work_waiter = loop.create_future()
            timer = loop.call_later(min(remaining, self._look_every), _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._work_waiter = None
            if self._work_made:
                break
            if self._committed_elsewhere(skip):
                self._look_every = CHANGE_POLL
                break
            self._look_every = min(self._look_every * 2, CHANGE_POLL_MAX)
        self._work_made = False

    def _committed_elsewhere(self, skip: Sequence[str] = ()) -> bool:
        """Whether another connection committed since the last look (the first look only
        takes note). On the loop, on the writer's connection when it is idle: a busy writer
        means this process is writing, and its own work wakes its workers."""
        conn = self._take_writer()
        if conn is None:
            return False
        try:
            driver = self._waitless
            version = int(driver.execute("PRAGMA data_version").fetchone()[0])
            seen, self._seen_version = self._seen_version, version
            if seen is None or version == seen:
                return False
            # Only claimable work is news: a worker busy in another process commits all
            # the time, and a claim is a write that would queue behind its rounds.
            params = {"now": self.timestamp_param(utcnow())}
            if skip:
                params.update(skip_params(skip))
            with closing(driver.execute(_any_runnable(skip_slots(len(skip))), params)) as cursor:
                return bool(cursor.fetchall())
        except sqlite3.Error:  # a lock at the wrong moment: look for work, to be safe
            return True
        finally:
            self._give_writer()

    def _take_writer(self) -> Connection | None:
        """``_writer_idle`` without the generator (a chain's every round comes here): the
        writer's connection, its lock now held, or None. ``_give_writer`` hands it back."""
        conn = self._writer_conn
        lock = self._writer.lock
        if conn is None or lock is None or not self._writer.idle():
            return None
        if not lock.acquire(blocking=False):
            return None
        try:
            driver = conn.connection.dbapi_connection
            if self._waitless is not driver:
                assert driver is not None
                driver.execute("PRAGMA busy_timeout=0")
                self._waitless = driver
        except BaseException:
            lock.release()
            raise
        self._inline_now = True
        return conn

    def _give_writer(self) -> None:
        self._inline_now = False
        lock = self._writer.lock
        assert lock is not None
        lock.release()

    def _wait_again(self, driver: Any) -> None:
        """On the writer thread, before its transaction: wait for locks again (the busy
        timeout an inline write left at 0, see ``_waitless``)."""
        driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._waitless = None

    def _commit_inline(self, batches: Sequence[Batch]) -> object:
        """Small rounds (a lone one, or a group formed in one turn), committed right here
        on the loop when that cannot wait; their outcomes, or NOT_HERE.

        Decision (measured, see the figures in storage.lanes): the hop to the writer
        thread and back costs ~25 us on a busy machine but ~110 us on an idle VM (waking
        an idle vCPU, twice), which made the one-execution chain benchmark 10-40% slower
        per step. So the one store call a lone execution makes per round stays on the
        loop when, and only when, nothing in it can wait: the writer thread is idle (its
        lock is free and nothing is queued, so this shares the writer's connection and
        overtakes nothing), SQLite's write lock is free at once (busy timeout 0: another
        process writing sends the round to the writer thread instead), the commit does
        not fsync (synchronous=NORMAL in WAL; FULL/EXTRA never come here), no checkpoint
        runs in it (the checkpointer thread does those), and the rounds are small
        (INLINE_MAX_ROWS in all) and reach no other execution. What is left is CPU work
        the size of the rounds themselves.
        ``SQLiteStore(url, inline_commits=False)`` turns it off.
        """
        rows = 0
        for batch in batches:
            counted = lone_round_rows(batch)
            if counted is None:
                return NOT_HERE
            rows += counted
        if rows > INLINE_MAX_ROWS:
            return NOT_HERE
        conn = self._take_writer()
        if conn is None:
            return NOT_HERE
        try:
            driver = self._waitless  # the writer's driver connection: _take_writer set it
            try:
                self._statements(driver).execute("BEGIN IMMEDIATE")
            except sqlite3.Error:  # locked by another process: wait off the loop
                return NOT_HERE
            return self._group._driver_batches(conn, list(batches), self._begun)
        finally:
            self._give_writer()

    def _statements(self, driver: Any) -> Any:
        """A cursor of the writer's driver connection (one per connection, a new one after
        a reconnect), for its transactions' BEGIN and COMMIT: whoever holds the writer's
        lock uses it (its thread, or the loop inline)."""
        cached = self._statement_cursor
        if cached is None or cached[0] is not driver:
            cached = self._statement_cursor = (driver, driver.cursor())
        return cached[1]

    def _count_write(self, checkpointer: Lane) -> None:
        """On the writer thread, at each write transaction: every CHECKPOINT_EVERY of them,
        ask the checkpointer for a checkpoint (unless one is still pending)."""
        self._writes += 1
        if self._writes >= CHECKPOINT_EVERY and not self._checkpoint_pending:
            self._writes = 0
            self._checkpoint_pending = True
            checkpointer.post(self._checkpoint)

    def _checkpoint(self) -> None:
        """On the checkpointer thread and its own connection: copy the WAL's committed pages
        into the database file. PASSIVE: it waits for nobody and nobody waits for it."""
        try:
            driver = self.conn.connection.dbapi_connection
            assert driver is not None
            driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self._checkpoint_pending = False

    async def db_now(self) -> datetime:
        # The file lives on this machine, so its clock is ours: no query needed, which keeps
        # an idle worker at one query per second.
        return utcnow()

    async def read_execution(self, execution_id: str) -> tuple[Row, list[Row]] | None:
        return await self._documents.get(execution_id)

    def _read_executions(self, ids: Collection[str]) -> dict[str, tuple[Row, list[Row]]]:
        """Executions by id, each with its steps in ``seq`` order, in one read transaction (one
        snapshot): two statements whatever the number of ids; one id, the point read's own."""
        keys = list(ids)
        if len(keys) == 1:
            one = self._read_one(keys[0])
            return {} if one is None else {keys[0]: one}
        with self.reading():
            return self._documents_of(keys)


#: SQLite's answers for a lock it would have waited for (extended codes share these low bits).
_WAIT_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
#: Its answers about the file and the machine, not the statement (SQLiteStore._is_trouble).
_TROUBLE_CODES = (
    *_WAIT_CODES,
    sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PROTOCOL,
    sqlite3.SQLITE_NOTADB,
)


def _sqlite_code(exc: BaseException) -> int | None:
    """The primary result code of a driver error, as raised or wrapped by SQLAlchemy."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _would_wait(exc: DBAPIError) -> bool:
    """The statement was refused because it would have waited (busy timeout 0)."""
    return isinstance(exc.orig, sqlite3.OperationalError) and _sqlite_code(exc) in _WAIT_CODES


@functools.cache
def _any_runnable(slots: int = 0) -> str:
    """Whether any execution is claimable now (the claim's own candidates, storage.leasesql),
    leaving out the workflow versions of ``slots`` placeholders (leasegroup.skip_slots)."""
    skip = [f":skip{i}" for i in range(slots)]
    branches = [
        f"SELECT * FROM ({b})"  # noqa: S608 - fixed text
        for b in oldest_runnable_sql(":now", "1", hint=True, skip=skip)
    ]
    return f"SELECT 1 FROM ({' UNION ALL '.join(branches)}) LIMIT 1"  # noqa: S608 - fixed text


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _check_writable(url: str, file: Path) -> None:
    """StorageError when SQLite could not write: the file, or its folder (where WAL mode
    keeps the file's -wal and -shm companions and new databases are made), is
    read-only. Even commands that only read need them.

    Decision: no read-only mode (``mode=ro&immutable=1``). A database on read-only media
    (a backup) is read by copying it somewhere writable, as the message says: a store
    that opens without its migrations, WAL and leases would be a second storage layer
    to keep right for that one case."""
    folder = file.parent
    if file.exists() and not os.access(file, os.W_OK):
        where = f"the file {file} is read-only"
    elif not os.access(folder, os.W_OK | os.X_OK):
        where = f"the folder {folder} is read-only"
    else:
        return
    raise StorageError(
        f"cannot open {url}: {where}; SQLite writes the database and, in WAL mode, its "
        f"-wal and -shm files beside it (to read a copy on read-only media, copy the file "
        f"to a writable folder first; or give a writable place with --db or FLOWLEDGER_DB)"
    )
