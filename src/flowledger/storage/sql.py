"""SQLAlchemy Core queries shared by every SQL backend; dialects override only what differs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from flowledger.errors import StorageError
from flowledger.storage import migrations
from flowledger.storage.artifacts import SQLArtifactStore
from flowledger.storage.base import (
    Batch,
    ExecutionQuery,
    Row,
    SignalBlocked,
    Store,
    VersionSummary,
    WorkflowVersion,
    claimable_when_created,
)
from flowledger.storage.counts import SQLCountStore
from flowledger.storage.counts import filtered as _filtered
from flowledger.storage.descendants import SQLDescendantStore
from flowledger.storage.entities import SQLEntityStore
from flowledger.storage.fastpath import (
    PreparedRead,
    PreparedWrite,
    driver_pipeline,
    placeholder,
    prepare_insert,
    prepare_update,
    timestamp_processor,
)
from flowledger.storage.gauges import SQLGaugeStore
from flowledger.storage.groupcommit import GroupCommitter, Inline
from flowledger.storage.jobs import SQLJobStore
from flowledger.storage.lanes import Lane
from flowledger.storage.leasegroup import LeaseGroup, LeaseWork, skip_slots
from flowledger.storage.leasesql import SQLLeaseGroupStore
from flowledger.storage.pruning import SQLPruneStore
from flowledger.storage.pushes import SQLPushStore
from flowledger.storage.readiness import SQLReadinessStore
from flowledger.storage.schedules import SQLScheduleStore
from flowledger.storage.schema import (
    UTCDateTime,
    events,
    executions,
    meta,
    signals,
    step_executions,
    workflow_versions,
    workflows,
)
from flowledger.storage.schema_artifacts import artifacts as artifacts_table
from flowledger.storage.sizes import SQLSizeStore
from flowledger.storage.sqlpart import (
    DatabaseTrouble,
    DriverErrors,
    guarded_read,
    lease_write,
    point_read,
    reads,
    small_write,
    writes,
)
from flowledger.storage.steplogs import SQLStepLogStore
from flowledger.storage.tokens import SQLTokenStore
from flowledger.storage.webhooks import SQLWebhookStore
from flowledger.storage.writes import BatchWriter
from flowledger.timeutil import utcnow

#: The id of a workflow's version by its number (``workflow_version_id``).
VERSION_BY_NUMBER = (
    "SELECT id FROM workflow_versions WHERE name = {mark} AND version = {mark} LIMIT 1"
)
#: Its pushed (live) version only.
PUSHED = "SELECT version_id FROM workflows WHERE name = {mark}"
#: Else its pushed (live) version, else its newest.
PUSHED_ELSE_NEWEST = (
    "SELECT v.id FROM workflow_versions AS v WHERE v.name = {mark} ORDER BY "
    "CASE WHEN v.id = (SELECT w.version_id FROM workflows AS w WHERE w.name = {mark}) "
    "THEN 0 ELSE 1 END, v.version DESC LIMIT 1"
)


class SQLStore(
    SQLLeaseGroupStore,
    SQLDescendantStore,
    SQLTokenStore,
    SQLEntityStore,
    SQLScheduleStore,
    SQLJobStore,
    SQLArtifactStore,
    SQLWebhookStore,
    SQLGaugeStore,
    SQLCountStore,
    SQLStepLogStore,
    SQLPushStore,
    SQLPruneStore,
    SQLSizeStore,
    SQLReadinessStore,
    Store,
):
    """A store on one SQLAlchemy engine. Method bodies run off the event loop (storage.lanes):
    writes on one writer thread, reads on up to ``readers`` reader threads, each thread on a
    connection of its own. ``readers=0`` runs reads on the writer thread too (an in-memory
    SQLite database is one connection: every call must take turns on it)."""

    def __init__(
        self,
        url: str,
        engine: Engine,
        *,
        readers: int = 3,
        driver_begin: Callable[[Any], None] | None = None,
        inline: Inline | None = None,
        driver_commit: Callable[[Any], None] | None = None,
    ) -> None:
        self.url = url
        self._engine = engine
        self.timestamp_param = timestamp_processor(engine.dialect)
        self._local = threading.local()
        #: Every connection opened (by lane threads, or by a test reaching for ``conn``),
        #: closed by ``close``.
        self._opened: list[Connection] = []
        self._opened_lock = threading.Lock()
        self._writer = Lane("flowledger-writer", 1, lock=threading.Lock())
        self._readers = Lane("flowledger-reader", readers) if readers else self._writer
        self._leases = self._writer
        self._release_sql: PreparedWrite | None = None
        #: Reads through the driver, built on first use (the dialect is set up by then).
        self._prepared_reads: tuple[PreparedRead, PreparedRead] | None = None
        self._prepared_many: tuple[PreparedRead, PreparedRead] | None = None
        dbapi = engine.dialect.loaded_dbapi
        #: The driver's base error, for the statements that go to the driver directly.
        self._driver_error: type[Exception] = dbapi.Error
        self._driver_trouble = (dbapi.OperationalError, dbapi.InterfaceError)  # SQLPart's
        #: Keyword arguments of the driver's ``execute`` for ``_driver_reads``.
        self._read_options: dict[str, Any] = {}
        #: New executions' (and their first events') inserts, by the columns a row has.
        self._creates: dict[tuple[str, tuple[str, ...]], PreparedWrite] = {}
        #: Closed by ``close``, in this order: the writes queued before close still land.
        self._lanes = [self._writer, self._readers] if readers else [self._writer]
        self._batch_writer = BatchWriter(engine.dialect)
        #: Told of each signal this store sends, once committed (Store.hear_signals).
        self._hearers: list[Callable[[str], None]] = []
        self._group = GroupCommitter(
            self._writer,
            lambda: self.conn,
            self._batch_writer.apply,
            engine.dialect.loaded_dbapi.IntegrityError,
            self._trouble,
            driver_begin,
            inline,
            driver_commit=driver_commit,
        )
        #: Starts, takes, releases and claims made together share one call (storage.leasegroup,
        #: its SQL in storage.leasesql).
        self._lease_group = LeaseGroup(self._apply_leases, self._submit_leases, self._trouble)

    @property
    def conn(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._engine.connect()
            except DBAPIError as exc:
                raise self._connect_error(exc) from exc
            with self._opened_lock:
                self._opened.append(conn)
            self._local.conn = conn
        return conn

    def _connect_error(self, exc: DBAPIError) -> StorageError:
        """A sentence about a failed connection; dialects add what a person should check."""
        return StorageError(f"cannot open database {self.url}: {exc.orig}")

    async def initialize(self) -> None:
        await self._writer.run(self._migrate_if_needed)
        # Every lane thread connects now, together, rather than on its first call: the
        # first reads of a run then pay no connection setup (and a bad URL fails here).
        await asyncio.gather(*(lane.on_each_thread(lambda: self.conn) for lane in self._lanes))

    def _migrate_if_needed(self) -> None:
        # Runs on every start: one short read when the schema is current.
        with self.reading():
            if migrations.current_revision(self.conn) == migrations.HEAD:
                return
        self._upgrade()

    @writes
    def upgrade(self) -> list[str]:
        return self._upgrade()

    def _upgrade(self) -> list[str]:
        with self.conn.begin():
            self._lock_schema()
            return migrations.upgrade(self.conn)

    def _lock_schema(self) -> None:
        """Serialize concurrent upgrades; SQLite's BEGIN IMMEDIATE already does."""

    async def close(self) -> None:
        # Calls already queued still run; then the threads leave and their connections close.
        for lane in self._lanes:
            await lane.close()
        self._release_cursors()
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()
        self._engine.dispose()

    def _release_cursors(self) -> None:
        """Close the driver cursors kept across calls (no call runs any more)."""
        self._batch_writer.release()

    # -- workflow versions --------------------------------------------------------------------

    @writes
    def save_workflow_version(
        self,
        name: str,
        checksum: str,
        document: str,
        format_version: int,
        source: str | None = None,
    ) -> WorkflowVersion:
        t = workflow_versions
        with self.conn.begin():
            row = self.conn.execute(
                select(t).where(and_(t.c.name == name, t.c.checksum == checksum))
            ).first()
            if row is None:
                latest = self.conn.execute(
                    select(func.max(t.c.version)).where(t.c.name == name)
                ).scalar()
                values = {
                    "id": str(uuid.uuid4()),
                    "name": name,
                    "version": (latest or 0) + 1,
                    "checksum": checksum,
                    "document": document,
                    "format_version": format_version,
                    "created_at": utcnow(),
                    "source": source,
                }
                self.conn.execute(insert(t).values(**values))
                return _version(values)
        return _version(row._mapping)

    @point_read
    def get_workflow_version(self, version_id: str) -> WorkflowVersion | None:
        with self.reading():
            row = self.conn.execute(
                select(workflow_versions).where(workflow_versions.c.id == version_id)
            ).first()
        return _version(row._mapping) if row else None

    def _version_statement(
        self, name: str, version: int | None, pushed_only: bool = False
    ) -> tuple[str, tuple[str | int, ...]] | None:
        """The one statement that reads the version ``(name, version)`` names, and its
        parameters; None when no stored version can have that number (the column is a
        32-bit integer). Each store's ``workflow_version_id`` runs it its own way. Fixed
        SQL: every start by name pays it, and building the SQLAlchemy statement per call
        was a third of an HTTP start on SQLite (py-spy under bench/api_bench.py)."""
        if version is not None and not -(2**31) <= version < 2**31:
            return None
        mark = placeholder(self._engine.dialect)
        if version is None and pushed_only:
            return PUSHED.format(mark=mark), (name,)
        if version is None:
            return PUSHED_ELSE_NEWEST.format(mark=mark), (name, name)
        return VERSION_BY_NUMBER.format(mark=mark), (name, version)

    @reads
    def list_workflow_versions(self, name: str | None = None) -> list[VersionSummary]:
        t = workflow_versions
        query = select(t.c.id, t.c.name, t.c.version, t.c.checksum, t.c.created_at)
        query = query.order_by(t.c.name, t.c.version)
        if name is not None:
            query = query.where(t.c.name == name)
        with self.reading():
            return [VersionSummary(*row) for row in self.conn.execute(query)]

    @writes
    def activate_workflow(self, name: str, version_id: str) -> bool:
        t = workflows
        with self.conn.begin():
            current = self.conn.execute(select(t.c.version_id).where(t.c.name == name)).scalar()
            if current == version_id:
                return False
            now = self.conn.execute(select(self._sql_now())).scalar_one()
            values = {"version_id": version_id, "pushed_at": now}
            if current is None:
                self.conn.execute(insert(t).values(name=name, first_pushed_at=now, **values))
            else:
                self.conn.execute(update(t).where(t.c.name == name).values(**values))
            return True

    @reads
    def first_pushes(self) -> dict[str, datetime]:
        t = workflows
        with self.reading():
            rows = self.conn.execute(select(t.c.name, t.c.first_pushed_at))
            return {r[0]: _aware(r[1]) for r in rows}

    @reads
    def active_workflow_ids(self) -> list[tuple[str, datetime]]:
        w = workflows
        query = (
            select(w.c.version_id, w.c.pushed_at)
            .where(w.c.disabled_at.is_(None))  # a disabled workflow's triggers are off
            .order_by(w.c.name)
        )
        with self.reading():
            return [(r.version_id, r.pushed_at) for r in self.conn.execute(query)]

    # -- executions ---------------------------------------------------------------------------

    async def create_execution(
        self,
        execution: Row,
        events_: list[Row],
        steps: Sequence[Row] = (),
        artifacts: Sequence[Row] = (),
    ) -> str:
        # A plain new execution is two rows (may commit inline, see SQLPart._inline_write);
        # a rerun's copied steps can be thousands: those always go to the writer thread.
        if steps or artifacts:
            created = await self._create_execution(execution, events_, steps, artifacts)
        else:
            created = await self._create_small_execution(execution, events_)
        if claimable_when_created(execution):
            self._wake_workers_here()
        return created

    def _wake_workers_here(self) -> None:
        """Work was just made claimable (an execution nobody holds, a signal): SQLite wakes
        this process's waiting workers here, after the write; PostgreSQL's write NOTIFYed
        every process's (``_wake_with_this_commit``)."""

    async def _create_small_execution(self, execution: Row, events_: list[Row]) -> str:
        # Starts made together share one transaction (storage.leasegroup).
        work = LeaseWork(create=(execution, events_))
        created = (await self._lease_group.ask(work)).created
        assert created is not None
        return created

    @writes
    def _create_execution(
        self, execution: Row, events_: list[Row], steps: Sequence[Row], files: Sequence[Row]
    ) -> str:
        return self._insert_execution(execution, events_, steps, files)

    def _insert_execution(
        self,
        execution: Row,
        events_: list[Row],
        steps: Sequence[Row],
        files: Sequence[Row] = (),
    ) -> str:
        try:
            with self.conn.begin():
                # The two small inserts on the driver's cursor (storage.fastpath): building
                # them as SQLAlchemy statements cost more than writing them.
                self._insert_rows(executions, [execution])
                if steps:
                    self.conn.execute(insert(step_executions), list(steps))
                if files:  # a rerun's copies of its reused steps' files (already on disk)
                    self.conn.execute(insert(artifacts_table), list(files))
                if events_:
                    self._insert_rows(events, events_)
                if claimable_when_created(execution):
                    self._wake_with_this_commit()
        except IntegrityError:
            key = execution.get("trigger_key")
            existing = self._trigger_key_owner(key) if key else None
            if existing is None:
                raise
            return existing
        return str(execution["id"])

    def _insert_rows(self, table: Table, rows: list[Row]) -> None:
        """Rows inserted through the driver inside the open transaction, each with the
        columns it has (rows are few: one statement each)."""
        driver = self.conn.connection.dbapi_connection
        assert driver is not None
        with DriverErrors(self._driver_error), closing(driver.cursor()) as cursor:
            for row in rows:
                prepared = self._row_insert(table, row)
                cursor.execute(prepared.sql, prepared.params(row))

    def _row_insert(self, table: Table, row: Row, suffix: str = "") -> PreparedWrite:
        """The INSERT of the columns ``row`` has, then ``suffix`` (an ON CONFLICT clause),
        prepared once per set of columns."""
        key = (table.name + suffix, tuple(row))
        prepared = self._creates.get(key)
        if prepared is None:
            prepared = prepare_insert(table, key[1], self._engine.dialect)
            prepared.sql += suffix
            self._creates[key] = prepared
        return prepared

    @reads
    def find_by_trigger_key(self, trigger_key: str) -> str | None:
        return self._trigger_key_owner(trigger_key)

    def _trigger_key_owner(self, trigger_key: str) -> str | None:
        t = executions
        with self.reading():
            found = self.conn.execute(select(t.c.id).where(t.c.trigger_key == trigger_key))
            return found.scalar()

    async def send_signal(self, signal: Row, *, unless_pending: str | None = None) -> bool:
        sent = await self._send_signal(signal, unless_pending)
        if sent:
            self._wake_workers_here()
            self._signalled_here([signal["execution_id"]])
        return sent

    def hear_signals(self, heard: Callable[[str], None]) -> Callable[[], None]:
        self._hearers.append(heard)
        return lambda: self._hearers.remove(heard)

    def _signalled_here(self, execution_ids: Iterable[str]) -> None:
        """Signals to ``execution_ids`` were just committed by this store: its hearers
        (Store.hear_signals) are told, once per execution."""
        for execution_id in dict.fromkeys(execution_ids):
            for heard in tuple(self._hearers):
                heard(execution_id)

    @writes
    def _send_signal(self, signal: Row, unless_pending: str | None) -> bool:
        t = executions
        with self.conn.begin() as transaction:
            # Row lock first (PostgreSQL): a concurrent release_lease then sees the signal,
            # and two signals to one execution are written one after the other, so the
            # second sees the first's id below (SQLite: one writer at a time).
            self.conn.execute(
                update(t)
                .where(t.c.id == signal["execution_id"])
                .values(wake_at=self._sql_now(), signals_sent=t.c.signals_sent + 1)
            )
            taken = select(signals.c.id).where(signals.c.id == signal["id"])
            if self.conn.execute(taken).first() is not None:
                transaction.rollback()
                return False
            if unless_pending is not None:
                blocking = select(signals.c.id).where(
                    _unconsumed(signal["execution_id"]), signals.c.kind == unless_pending
                )
                if self.conn.execute(blocking.limit(1)).first() is not None:
                    transaction.rollback()
                    raise SignalBlocked(unless_pending)
            self.conn.execute(insert(signals), [signal])
            self._wake_with_this_commit()
            self._batch_writer.signalled(self.conn, [signal["execution_id"]])
        return True

    def _wake_with_this_commit(self) -> None:
        return None  # SQLite: no channel between processes (see _wake_workers_here)

    @reads
    def pending_signals(self, execution_id: str) -> list[Row]:
        t = signals
        query = select(t).where(_unconsumed(execution_id)).order_by(t.c.created_at, t.c.id)
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(query)]

    async def commit(self, batch: Batch, *, group: bool = False) -> None:
        if group:
            await self._group.commit(batch)
        elif not self._group.committed_inline(batch):
            await self._group.commit_now(batch)
        if batch.signals:  # a child's end or question, a parent's cancel of its children
            self._signalled_here(s["execution_id"] for s in batch.signals)

    @point_read
    def get_execution(self, execution_id: str) -> Row | None:
        # Through the driver's cursor: SQLAlchemy's statement and result machinery cost
        # several times the read itself, and a worker reads each execution it claims.
        with self.reading():
            [found] = self._driver_reads([(self._reads()[0], execution_id)])
        return found[0] if found else None

    def _reads(self) -> tuple[PreparedRead, PreparedRead]:
        """The execution by id, and its steps in ``seq`` order."""
        if self._prepared_reads is None:
            dialect = self._engine.dialect
            self._prepared_reads = (
                PreparedRead(executions, dialect),
                PreparedRead(step_executions, dialect, where="execution_id", order_by="seq"),
            )
        return self._prepared_reads

    def _many_reads(self) -> tuple[PreparedRead, PreparedRead]:
        """``_reads`` of many executions at once (``PreparedRead.keys``): rows by key."""
        if self._prepared_many is None:
            dialect = self._engine.dialect
            self._prepared_many = (
                PreparedRead(executions, dialect, many=True),
                PreparedRead(
                    step_executions, dialect, where="execution_id", order_by="seq", many=True
                ),
            )
        return self._prepared_many

    def _documents_of(self, keys: list[str]) -> dict[str, tuple[Row, list[Row]]]:
        """Executions by id, each with its steps in ``seq`` order, inside the caller's read
        transaction: two statements whatever the number of ids."""
        by_id, steps_of = self._many_reads()
        listed = by_id.keys(keys)
        rows, steps = self._driver_reads([(by_id, listed), (steps_of, listed)])
        documents: dict[str, tuple[Row, list[Row]]] = {row["id"]: (row, []) for row in rows}
        for step in steps:
            # Without one snapshot for both statements, a step of an execution created
            # between them would belong to no document read here.
            if (document := documents.get(step["execution_id"])) is not None:
                document[1].append(step)
        return documents

    def _driver_reads(self, reads: Sequence[tuple[PreparedRead, object]]) -> list[list[Row]]:
        """Each ``(read, key)``'s rows, on the driver's cursors inside the caller's
        transaction; on PostgreSQL all sent in one pipeline (one round trip)."""
        conn = self.conn
        driver = conn.connection.dbapi_connection
        assert driver is not None
        cursors = [driver.cursor() for _ in reads]
        sql = "; ".join(read.sql for read, _ in reads)
        try:
            # A lone statement gains nothing from a pipeline (a worker's get_execution).
            with (
                DriverErrors(self._driver_error, sql),
                driver_pipeline(conn) if len(reads) > 1 else contextlib.nullcontext(),
            ):
                for cursor, (read, key) in zip(cursors, reads, strict=True):
                    cursor.execute(read.sql, (key,), **self._read_options)
                found = [cursor.fetchall() for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()
        return [
            [read.row(values) for values in rows]
            for (read, _), rows in zip(reads, found, strict=True)
        ]

    @reads
    def find_executions(self, prefix: str, limit: int = 2) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.reading():
            rows = self.conn.execute(
                select(executions.c.id)
                .where(executions.c.id.like(escaped + "%", escape="\\"))
                .limit(limit)
            )
            return [r[0] for r in rows]

    @reads
    def get_step_executions(self, execution_id: str) -> list[Row]:
        with self.reading():
            return self._step_rows(execution_id)

    @point_read
    def read_execution(self, execution_id: str) -> tuple[Row, list[Row]] | None:
        return self._read_one(execution_id)

    def _read_one(self, execution_id: str) -> tuple[Row, list[Row]] | None:
        """``read_execution``'s body, on the calling thread."""
        # A point read although it reads the steps too: they are found by the index on
        # execution_id, and the document built from them costs the loop as much anyway.
        # Statements built once: building one and its cache key was a tenth of a GET.
        # Both through the driver (as get_execution): SQLAlchemy's result machinery was
        # ~40% of a GET /executions/{id} under load (py-spy); one round trip on PostgreSQL.
        by_id, steps_of = self._reads()
        with self.reading():
            found, steps = self._driver_reads([(by_id, execution_id), (steps_of, execution_id)])
        return (found[0], steps) if found else None

    def _step_rows(self, execution_id: str) -> list[Row]:
        return [dict(r._mapping) for r in self.conn.execute(_STEPS_OF, {"id": execution_id})]

    @reads
    def list_executions(self, query: ExecutionQuery) -> list[Row]:
        t = executions
        stmt = _filtered(
            select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(query.limit),
            query,
            postgres=self.conn.dialect.name == "postgresql",
        )
        if query.before:
            at, last_id = query.before
            stmt = stmt.where(
                or_(t.c.created_at < at, and_(t.c.created_at == at, t.c.id < last_id))
            )
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(stmt)]

    @reads
    def count_executions(self, query: ExecutionQuery) -> int:
        stmt = _filtered(
            select(func.count()).select_from(executions),
            query,
            postgres=self.conn.dialect.name == "postgresql",
        )
        with self.reading():
            return int(self.conn.execute(stmt).scalar_one())

    @reads
    def get_events(
        self, execution_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Row]:
        # With the loop iterations of each step event (its step row's, by primary key).
        stmt = (
            select(events, step_executions.c.loop_key)
            .select_from(
                events.outerjoin(
                    step_executions, step_executions.c.id == events.c.step_execution_id
                )
            )
            .where(and_(events.c.execution_id == execution_id, events.c.seq > after_seq))
            .order_by(events.c.seq)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(stmt)]

    @reads
    def last_event_at(self, execution_id: str, kind: str) -> datetime | None:
        # Backwards along the events' primary key (execution_id, seq) to the newest of kind.
        stmt = (
            select(events.c.at)
            .where(events.c.execution_id == execution_id, events.c.kind == kind)
            .order_by(events.c.seq.desc())
            .limit(1)
        )
        with self.reading():
            found: datetime | None = self.conn.execute(stmt).scalar()
        return found

    @reads
    def last_event_seq(self, execution_id: str) -> int:
        with self.reading():
            # The events' primary key (execution_id, seq) answers it from one index page.
            found = self.conn.execute(
                select(func.max(events.c.seq)).where(events.c.execution_id == execution_id)
            ).scalar()
            return int(found or 0)

    # -- ownership ----------------------------------------------------------------------------

    def _sql_now(self, plus: timedelta = timedelta(0)) -> ColumnElement[datetime]:
        """The database clock as a SQL expression; dialects with a server clock override it."""
        return literal(utcnow() + plus, UTCDateTime)

    def _lease_only_commit(self) -> None:
        """Inside a transaction that changes lease columns only (a claim, a release): let
        its commit skip waiting for the disk where the database allows (PostgreSQL). It is
        visible at once all the same; see PostgresStore for why a crash loses nothing."""

    async def db_now(self) -> datetime:
        # A read: once more on a connection the database dropped (guarded_read), so a
        # restart does not fail /readyz or a clock sync while the database answers.
        value, read_at = await self._writer.run(
            functools.partial(guarded_read, self, self._read_db_now)
        )
        # The caller takes this as "now" (Clock.synchronize): add the time since the server
        # read its clock (the COMMIT round trip, the hop back from the writer thread).
        # Without it the measured clock lags the server's by those: ~0.5 ms measured, enough
        # for a write stamped by this clock right after a push to look older than the push.
        return value + timedelta(seconds=time.monotonic() - read_at)

    def _read_db_now(self) -> tuple[datetime, float]:
        with self.conn.begin():
            value = self.conn.execute(select(self._sql_now())).scalar_one()
            # Before the COMMIT's round trip. (Not the middle of the query's: psycopg sends
            # its BEGIN first, which would put the clock ahead of the server's.)
            read_at = time.monotonic()
        return _aware(value), read_at

    @small_write
    def acquire_lease(
        self, execution_id: str, owner: str, lease: timedelta, *, steal_from: str | None = None
    ) -> int | None:
        row = self._acquire(execution_id, owner, lease, steal_from, executions.c.lease_epoch)
        return int(row[0]) if row is not None else None

    async def acquire_lease_row(
        self, execution_id: str, owner: str, lease: timedelta, *, steal_from: str | None = None
    ) -> Row | None:
        # The row comes back with the UPDATE (RETURNING): no read after it. Takes made
        # together (executions driven together) share one transaction: storage.leasegroup.
        if steal_from is not None:  # a takeover of a dead holder's execution: rare
            return await self._acquire_row_from(execution_id, owner, lease, steal_from)
        answer = await self._lease_group.ask(LeaseWork(owner, lease, take=execution_id))
        return answer.taken

    @small_write
    def _acquire_row_from(
        self, execution_id: str, owner: str, lease: timedelta, steal_from: str
    ) -> Row | None:
        row = self._acquire(execution_id, owner, lease, steal_from, *executions.c)
        return dict(row._mapping) if row is not None else None

    def _acquire(
        self,
        execution_id: str,
        owner: str,
        lease: timedelta,
        steal_from: str | None,
        *returning: ColumnElement[Any],
    ) -> Any:
        t = executions
        # Compare-and-set; RETURNING hands back the new fencing token.
        stmt = (
            update(t)
            .where(and_(t.c.id == execution_id, self._takeable(t, owner, steal_from)))
            .values(
                lease_epoch=t.c.lease_epoch + 1,
                lease_owner=owner,
                lease_expires_at=self._sql_now(lease),
                wake_at=None,
            )
            .returning(*returning)
        )
        with self.conn.begin():
            return self.conn.execute(stmt).first()

    async def claim_executions(
        self, owner: str, limit: int, lease: timedelta, *, skip: Sequence[str] = ()
    ) -> list[tuple[str, int]]:
        rows = await self.claim_execution_rows(owner, limit, lease, skip=skip)
        return [(row["id"], int(row["lease_epoch"])) for row in rows]

    async def claim_execution_rows(
        self, owner: str, limit: int, lease: timedelta, *, skip: Sequence[str] = ()
    ) -> list[Row]:
        # A worker's turn goes through the lease group like the engine's takes and
        # releases: whatever of theirs arrives meanwhile shares its transaction (SQLite:
        # storage.leasesql, fixed SQL on the driver; PostgreSQL: storage.pgleases).
        if limit <= 0:
            return []
        skip_slots(len(skip))  # too many: refused here, not in the group's transaction
        work = LeaseWork(owner, lease, claim=limit, skip=skip)
        return (await self._lease_group.ask(work)).claimed

    @writes
    def renew_leases(self, owner: str, leases: Mapping[str, int], lease: timedelta) -> set[str]:
        if not leases:
            return set()
        t = executions
        held: set[str] = set()
        # The heartbeat's: a database locked or gone comes out as StorageError, said in a
        # line and tried again at the next beat (runtime.leases).
        with DatabaseTrouble("renew the leases", self._trouble), self.conn.begin():
            # In id order, as rounds lock their executions (storage.pgwrites' fence): on
            # PostgreSQL they commit on another connection (storage.pgrounds), and two
            # transactions that lock overlapping rows in one order never deadlock.
            for execution_id, epoch in sorted(leases.items()):
                result = self.conn.execute(
                    update(t)
                    .where(
                        and_(
                            t.c.id == execution_id,
                            t.c.lease_epoch == epoch,
                            t.c.lease_owner == owner,
                        )
                    )
                    .values(lease_expires_at=self._sql_now(lease))
                )
                if result.rowcount == 1:
                    held.add(execution_id)
        return held

    @lease_write
    def release_lease(
        self,
        execution_id: str,
        epoch: int,
        wake_at: datetime | None = None,
        *,
        failed: bool = False,
    ) -> None:
        self._release(execution_id, epoch, wake_at, returning=False, failed=failed)

    async def release_lease_row(
        self, execution_id: str, epoch: int, wake_at: datetime | None = None
    ) -> Row | None:
        if wake_at is not None:  # parking looks for signals under a row lock: on its own
            return await self._park_row(execution_id, epoch, wake_at)
        work = LeaseWork(releases=((execution_id, epoch),))
        released = (await self._lease_group.ask(work)).released.get(execution_id)
        # Not released: the epoch moved on (taken over); the row as it is now.
        return released if released is not None else await self.get_execution(execution_id)

    @lease_write
    def _park_row(self, execution_id: str, epoch: int, wake_at: datetime) -> Row | None:
        return self._release(execution_id, epoch, wake_at, returning=True)

    def _release(
        self,
        execution_id: str,
        epoch: int,
        wake_at: datetime | None,
        *,
        returning: bool,
        failed: bool = False,
    ) -> Row | None:
        t = executions
        if wake_at is None and not returning:
            self._release_plain(execution_id, epoch)
            return None
        wake: datetime | ColumnElement[datetime] | None = wake_at
        with self.conn.begin():
            self._lease_only_commit()
            if wake_at is not None and not failed:
                # Lock the row, then look for signals: one sent meanwhile wakes it at once.
                self.conn.execute(select(t.c.id).where(t.c.id == execution_id).with_for_update())
                waiting = self.conn.execute(
                    select(signals.c.id)
                    .where(
                        and_(
                            signals.c.execution_id == execution_id, signals.c.consumed_at.is_(None)
                        )
                    )
                    .limit(1)
                ).first()
                if waiting is not None:
                    wake = self._sql_now()
            release = (
                update(t)
                .where(and_(t.c.id == execution_id, t.c.lease_epoch == epoch))
                .values(lease_owner=None, lease_expires_at=None, wake_at=wake)
            )
            if not returning:
                self.conn.execute(release)
                return None
            # The final row comes back with the UPDATE; read it only when the epoch moved on.
            row = self.conn.execute(release.returning(*t.c)).first()
            if row is None:
                row = self.conn.execute(select(t).where(t.c.id == execution_id)).first()
        return dict(row._mapping) if row is not None else None

    def _release_plain(self, execution_id: str, epoch: int) -> None:
        """The common release (an execution done, or drained): one prepared UPDATE through
        the driver's cursor inside SQLAlchemy's transaction. Building the Core statement
        (cache key, coercions, execution context) cost several times the write itself; a
        worker releases once per execution (bench/compare.py W3)."""
        if self._release_sql is None:
            self._release_sql = prepare_update(
                executions,
                ("lease_owner", "lease_expires_at", "wake_at"),
                ("id", "lease_epoch"),
                self._engine.dialect,
            )
        prepared = self._release_sql
        row = {"lease_owner": None, "lease_expires_at": None, "wake_at": None,
               "id": execution_id, "lease_epoch": epoch}  # fmt: skip
        with self.conn.begin():
            self._lease_only_commit()
            driver = self.conn.connection.dbapi_connection
            assert driver is not None
            driver.cursor().execute(prepared.sql, prepared.params(row))

    async def meta_secret(self, key: str) -> str:
        found = await self.meta_value(key)
        return found if found is not None else await self._create_meta_secret(key)

    @writes
    def _create_meta_secret(self, key: str) -> str:
        """On the writer and guarded like every write: the first listing on a database that
        cannot take writes (a full disk) is refused as StorageError, not a raw driver error."""
        read = select(meta.c.value).where(meta.c.key == key)
        try:
            with self.conn.begin():
                self.conn.execute(insert(meta).values(key=key, value=secrets.token_hex(32)))
        except IntegrityError:  # another process created it first: use theirs
            pass
        with self.reading():
            return str(self.conn.execute(read).scalar_one())

    @reads
    def leases_held_on(self, host: str, limit: int) -> list[tuple[str, str]]:
        t = executions
        # Walks the status index over the unfinished: few, beside a long history.
        stmt = (
            select(t.c.id, t.c.lease_owner)
            .where(
                t.c.runtime_status.in_(("NotStarted", "InProgress", "AwaitingUserInput")),
                t.c.lease_owner.startswith(f"{host}:", autoescape=True),
                t.c.lease_expires_at > self._sql_now(timedelta(0)),
            )
            .limit(limit)
        )
        with self.reading():
            return [(r[0], r[1]) for r in self.conn.execute(stmt)]

    @reads
    def meta_value(self, key: str) -> str | None:
        with self.reading():
            found = self.conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if found is None else str(found)

    @writes
    def put_meta_value(self, key: str, value: str) -> None:
        for _ in range(3):  # an insert racing ours: update the row it made
            try:
                with self.conn.begin():
                    changed = self.conn.execute(
                        update(meta).where(meta.c.key == key).values(value=value)
                    ).rowcount
                    if not changed:
                        self.conn.execute(insert(meta).values(key=key, value=value))
                return
            except IntegrityError:
                continue
        raise StorageError(f"could not store {key!r}: others kept writing it")


def _unconsumed(execution_id: str) -> ColumnElement[bool]:
    return and_(signals.c.execution_id == execution_id, signals.c.consumed_at.is_(None))


_STEPS_OF = (
    select(step_executions)
    .where(step_executions.c.execution_id == bindparam("id"))
    .order_by(step_executions.c.seq)
)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _version(row: Any) -> WorkflowVersion:
    return WorkflowVersion(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        checksum=row["checksum"],
        document=row["document"],
        created_at=row["created_at"],
        source=row["source"],
    )
