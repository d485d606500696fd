"""The embedded SQLite backend: WAL, one writer at a time, durable commits."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from flowledger.config import SQLITE_SYNCHRONOUS
from flowledger.errors import StorageError
from flowledger.storage.base import Batch
from flowledger.storage.groupcommit import NOT_HERE, lone_round_rows
from flowledger.storage.lanes import Lane
from flowledger.storage.sql import SQLStore
from flowledger.storage.sqlpart import READ_ONLY
from flowledger.timeutil import utcnow

# NORMAL in WAL mode survives any process crash (kill -9); FULL also survives power loss
# (FLOWLEDGER_SQLITE_SYNCHRONOUS, see flowledger.config: read by the caller, passed in here).


#: Reader threads (each with its own connection) beside the one writer. WAL readers never
#: wait for the writer; three let a slow read (a dashboard's query) leave room for others.
READERS = 3

#: Write transactions between two background checkpoints. SQLite's own checkpoint runs
#: inside the COMMIT that crosses 1,000 WAL pages and pays an fsync there: in the
#: 1,000-step chain benchmark those commits took 4-10 ms against a median of 0.09 ms,
#: doubling the mean commit. A PASSIVE checkpoint on another connection moves that work
#: out of every commit (the writer keeps appending meanwhile). ~4 pages per round: 200
#: writes is about SQLite's own 1,000-page cadence.
CHECKPOINT_EVERY = 200
#: WAL pages after which a committing writer still checkpoints itself (SQLite's
#: autocheckpoint), should the background checkpoints fall behind (~40 MB).
WAL_BACKSTOP = 10_000

#: How long a statement waits for another process's write lock.
BUSY_TIMEOUT_MS = 30_000
#: Rows (steps and events) of the largest round committed on the loop (_commit_inline).
INLINE_MAX_ROWS = 16

#: How long opening a brand-new database waits for another process that is creating it.
WAL_SWITCH_WAIT = 30.0


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
    ) -> None:
        if synchronous.upper() not in SQLITE_SYNCHRONOUS:
            raise StorageError(f"unknown SQLite synchronous setting {synchronous!r}")
        synchronous = synchronous.upper()
        parsed = make_url(url)
        database = parsed.database or ""
        memory = not database or database == ":memory:"
        if not memory:
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise StorageError(f"cannot open {url}: the folder {folder} does not exist")
        # File databases checkpoint on a thread of their own (see CHECKPOINT_EVERY).
        checkpointer = None if memory else Lane("flowledger-checkpoint", 1)
        self._writes = 0
        self._checkpoint_pending = False
        engine = create_engine(
            url,
            # Each lane thread keeps one connection for the store's life (file: a pool as
            # large as the lanes; memory: StaticPool, the one connection all share).
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
            **({} if memory else {"pool_size": 1 + readers, "max_overflow": 4}),
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN IMMEDIATE is ours to emit.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
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
            # Straight to the driver: SQLAlchemy's execution context costs ~6 us per
            # transaction here, a third of what the hop to the writer thread costs.
            try:
                conn.connection.dbapi_connection.execute(sql)
            except sqlite3.Error as exc:  # wrapped as SQLAlchemy would (callers catch those)
                raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc

        # In memory, the database is one connection: every call takes turns on the writer
        # thread (readers=0), as it did on the loop before.
        def begin_write(driver: Any) -> None:
            # The lone-round commit's own BEGIN (groupcommit: SQLAlchemy's is skipped there).
            driver.execute("BEGIN IMMEDIATE")
            if checkpointer is not None:
                self._count_write(checkpointer)

        # Decision: the driver-transaction fast path is SQLite's only; on PostgreSQL a
        # round trip dwarfs the few microseconds it saves.
        def begun(_driver: Any) -> None:
            if checkpointer is not None:
                self._count_write(checkpointer)

        self._begun = begun
        self._writer_conn: Connection | None = None
        inline = inline_commits and not memory and synchronous == "NORMAL"
        super().__init__(
            url,
            engine,
            readers=0 if memory else readers,
            driver_begin=begin_write,
            inline=self._commit_inline if inline else None,
        )
        if checkpointer is not None:
            self._lanes.append(checkpointer)

    async def initialize(self) -> None:
        await super().initialize()
        self._writer_conn = await self._writer.run(lambda: self.conn)

    def _commit_inline(self, batch: Batch) -> object:
        """A small lone round, committed right here on the loop when that cannot wait.

        Decision (measured, see the figures in storage.lanes): the hop to the writer
        thread and back costs ~25 us on a busy machine but ~110 us on an idle VM (waking
        an idle vCPU, twice), which made the one-execution chain benchmark 10-40% slower
        per step. So the one store call a lone execution makes per round stays on the
        loop when, and only when, nothing in it can wait: the writer thread is idle (its
        lock is free and nothing is queued, so this shares the writer's connection and
        overtakes nothing), SQLite's write lock is free at once (busy timeout 0: another
        process writing sends the round to the writer thread instead), the commit does
        not fsync (synchronous=NORMAL in WAL; FULL/EXTRA never come here), no checkpoint
        runs in it (the checkpointer thread does those), and the round is small
        (INLINE_MAX_ROWS). What is left is CPU work the size of the round itself.
        ``SQLiteStore(url, inline_commits=False)`` turns it off.
        """
        conn = self._writer_conn
        rows = lone_round_rows(batch)
        if conn is None or rows is None or rows > INLINE_MAX_ROWS or not self._writer.idle():
            return NOT_HERE
        lock = self._writer.lock
        if lock is None or not lock.acquire(blocking=False):
            return NOT_HERE
        try:
            driver = conn.connection.dbapi_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")
            try:
                try:
                    driver.execute("BEGIN IMMEDIATE")
                except sqlite3.Error:  # locked by another process: wait off the loop
                    return NOT_HERE
                return self._group._driver_transaction(conn, batch, begin=self._begun)
            finally:
                driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            lock.release()

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
