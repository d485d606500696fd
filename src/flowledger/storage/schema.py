"""The database schema, shared by every backend (SQLAlchemy Core, dialect-neutral types)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)

#: What databases created before Alembic migrations record in ``flowledger_meta``;
#: revision 0001 is that schema. Schema changes are now Alembic revisions (``migrations``).
SCHEMA_VERSION = 1


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()


def partial_index(name: str, *columns: str, where: str, unique: bool = False) -> Index:
    """An index of the rows that match ``where``, on both databases.

    SQLite's condition is given here, PostgreSQL's only when the schema is created on
    PostgreSQL (``_postgresql_conditions``): SQLAlchemy checks a ``postgresql_where``
    argument by importing its PostgreSQL dialect, a twentieth of every command's start on
    SQLite, where nothing else needs it."""
    index = Index(name, *columns, unique=unique, sqlite_where=text(where))
    index.info["where"] = where
    return index


@event.listens_for(metadata, "before_create")
def _postgresql_conditions(target: MetaData, connection: Connection, **_: Any) -> None:
    """Give each ``partial_index`` its PostgreSQL condition before ``create_all`` there
    (the engine creates only new SQLite files from these tables; PostgreSQL databases
    get their schema from the migrations, which name their conditions themselves)."""
    if connection.dialect.name != "postgresql":
        return
    for table in target.tables.values():
        for index in table.indexes:
            if "where" in index.info:
                index.dialect_options["postgresql"]["where"] = text(index.info["where"])


#: The statuses of an execution that has not finished (it runs, waits or is queued).
UNFINISHED = ("NotStarted", "InProgress", "AwaitingUserInput")
#: The statuses of an execution that has ended (a retry may move a Failed one back).
FINISHED = ("Completed", "CompletedWithNoActionTaken", "Failed", "Cancelled")


def _statuses_sql(statuses: tuple[str, ...]) -> str:
    return "runtime_status IN ({})".format(", ".join(f"'{s}'" for s in statuses))


#: The predicates of the claims' two partial indexes (migration 0009), as SQL. SQLite uses
#: a partial index only for a query that repeats its predicate word for word, so the
#: claims (storage.leasegroup) are written from these same texts.
#: Running with no timer: running right now, or left by a process that stopped.
IN_PROGRESS_SQL = "runtime_status = 'InProgress' AND wake_at IS NULL"
#: Waiting for a time (a timer, a due date, or a signal that set it to now).
WAKING_SQL = _statuses_sql(UNFINISHED) + " AND wake_at IS NOT NULL"
#: Unfinished executions started by a schedule tick (trigger key ``schedule:…``,
#: definition.ticks): what a trigger's ``overlap`` policy looks for (migration 0012).
UNFINISHED_SCHEDULE_SQL = _statuses_sql(UNFINISHED) + " AND substr(trigger_key, 1, 9) = 'schedule:'"

meta = Table(
    "flowledger_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("document", Text, nullable=False),
    Column("format_version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    #: The text the version was first pushed or run from, comments and layout as written
    #: (``document`` is the parsed form, re-serialised); NULL before migration 0010.
    Column("source", Text),
    UniqueConstraint("name", "version", name="uq_workflow_versions_name_version"),
    UniqueConstraint("name", "checksum", name="uq_workflow_versions_name_checksum"),
)

executions = Table(
    "executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("correlation_id", String(200), nullable=False),
    Column("parent_id", String(36)),
    Column("root_id", String(36)),
    Column("workflow_version_id", String(36), nullable=False),
    Column("workflow_name", String(128), nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("runtime_status", String(32), nullable=False),
    Column("current_state_name", String(128)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("failed_at", UTCDateTime),
    Column("last_activity_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("context", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("variables", Text, nullable=False),
    Column("output", Text),
    Column("error", Text),
    #: The last event sequence number as of the row's last write. While the execution
    #: runs, this and current_state_name and last_activity_at may lag its events by about
    #: a second (runtime.journal); once it parks, waits or ends they are exact. A runner
    #: numbers events on from the events themselves (Store.last_event_seq), gap-free.
    Column("event_seq", Integer, nullable=False),
    #: Fencing token: every write of the execution names the epoch it holds.
    Column("lease_epoch", Integer, nullable=False, server_default=text("0")),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UTCDateTime),
    Column("wake_at", UTCDateTime),
    Column("format_version", Integer, nullable=False),
    #: How many hops from a root cause (sub-workflow nesting, entity-trigger chains).
    Column("depth", Integer, nullable=False, server_default=text("0")),
    #: The execution this one re-runs (``flowledger executions rerun``).
    Column("rerun_of", String(36)),
    Column("job_run_id", String(36)),
    #: What started it, when that must happen once only (a schedule tick, an entity event,
    #: a job-run item, a child of a step): a second start with the same key is refused.
    Column("trigger_key", String(300)),
    #: Signals sent to it, and how many of them its runners have acted on: a runner only
    #: reads the signal table when the two differ (or while it runs, once a second).
    Column("signals_sent", Integer, nullable=False, server_default=text("0")),
    Column("signals_taken", Integer, nullable=False, server_default=text("0")),
    #: On a root: the sub-workflow executions planned below it so far, at every level
    #: (storage.descendants; migration 0011). Nothing else writes it.
    Column("descendants", Integer, nullable=False, server_default=text("0")),
    # Lists by status, and what a claim (queued ones) or a prune's search walks: a status's
    # oldest first (storage.leasegroup, storage.pruning).
    Index("ix_executions_status", "runtime_status", "created_at", "id"),
    # What a claim reads besides the queued ones (migration 0009;
    # storage.leasegroup.oldest_runnable_sql): the running executions with no timer, oldest
    # first, and those waiting for a time, the soonest first. Parked executions and ones
    # waiting for a person are in neither order before what a claim can take. Queued ones
    # need none: the status index is theirs.
    # ``wake_at`` last (NULL in every entry): a claim orders by it too, so that only this
    # index gives its order, and PostgreSQL cannot walk the status index instead (which it
    # would, once its statistics take running-with-no-timer to be common).
    partial_index(
        "ix_executions_in_progress",
        "created_at",
        "id",
        "wake_at",
        where=IN_PROGRESS_SQL,
    ),
    partial_index(
        "ix_executions_waking",
        "wake_at",
        where=WAKING_SQL,
    ),
    # Partial (migration 0007): most executions have no parent, job run or trigger key,
    # and an index of NULLs only costs every start a B-tree insert. A lookup by value
    # (``parent_id = ?``) implies IS NOT NULL, so both databases still use them.
    partial_index(
        "ix_executions_parent",
        "parent_id",
        where="parent_id IS NOT NULL",
    ),
    partial_index(
        "ix_executions_job_run",
        "job_run_id",
        where="job_run_id IS NOT NULL",
    ),
    partial_index(
        "uq_executions_trigger_key",
        "trigger_key",
        where="trigger_key IS NOT NULL",
        unique=True,
    ),
    # A schedule's overlap check (storage.schedules): by workflow, only the unfinished
    # executions that ticks started, so it reads a handful of entries, never the history.
    partial_index(
        "ix_executions_unfinished_schedule",
        "workflow_name",
        where=UNFINISHED_SCHEDULE_SQL,
    ),
    Index("ix_executions_workflow", "workflow_name", "created_at", "id"),
    Index("ix_executions_created", "created_at"),
    Index("ix_executions_correlation", "correlation_id"),
)

step_executions = Table(
    "step_executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("execution_id", String(36), nullable=False),
    #: Creation order within the execution, so documents list steps as they happened.
    Column("seq", Integer, nullable=False),
    Column("step_id", String(128), nullable=False),
    Column("step_path", String(1024), nullable=False),
    #: Which loop iteration: "" at the top, "loop_a:3/loop_b:0" inside loops.
    Column("loop_key", String(1024), nullable=False),
    Column("type", String(200), nullable=False),
    Column("status", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    Column("failed_at", UTCDateTime),
    Column("due_at", UTCDateTime),
    Column("wake_at", UTCDateTime),
    Column("suspended", Integer, nullable=False, server_default=text("0")),
    Column("input", Text),
    Column("output", Text),
    Column("error", Text),
    Column("state", Text),
    Column("idempotency_key", String(64), nullable=False),
    Column("children", Text),
    UniqueConstraint(
        "execution_id", "step_path", "loop_key", "attempt", name="uq_step_executions_attempt"
    ),
    # No index of its own on (execution_id, seq): the constraint above leads with
    # execution_id and serves "this execution's steps" (migration 0006: one index fewer
    # for every step's insert).
    # At most one recorded completion per step and iteration, whatever races happen.
    partial_index(
        "uq_step_executions_completed",
        "execution_id",
        "step_path",
        "loop_key",
        where="status = 'Completed'",
        unique=True,
    ),
)

events = Table(
    "execution_events",
    metadata,
    Column("execution_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("step_execution_id", String(36)),
    Column("step_id", String(128)),
    Column("attempt", Integer),
    Column("status", String(32)),
    Column("detail", Text),
)


#: Pushed workflows: the version whose triggers (schedules, entity events, webhooks) are live.
workflows = Table(
    "workflows",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version_id", String(36), nullable=False),
    Column("pushed_at", UTCDateTime, nullable=False),
    #: When the name was pushed the first time: its entity triggers see writes from then on.
    Column("first_pushed_at", UTCDateTime, nullable=False),
    #: Set while its triggers are disabled (``flowledger workflows disable``): schedules,
    #: webhooks and entity triggers ignore it; manual starts still work.
    Column("disabled_at", UTCDateTime),
)

signals = Table(
    "execution_signals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("execution_id", String(36), nullable=False),
    #: ``input`` (a person's data for a waiting step), ``cancel``, and a child's
    #: ``child_done``, ``child_waiting``, ``child_resumed`` (runtime.lifecycle).
    Column("kind", String(32), nullable=False),
    Column("step_id", String(128)),
    Column("payload", Text),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    #: Set in the same transaction as the round that acted on the signal.
    Column("consumed_at", UTCDateTime),
    Index("ix_execution_signals_pending", "execution_id", "consumed_at"),
)


def row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


# Tables of the workflow model's other parts live in modules of their own, on this metadata.
from flowledger.storage import (  # noqa: E402
    schema_artifacts,  # noqa: F401
    schema_entities,  # noqa: F401
    schema_jobs,  # noqa: F401
    schema_ops,  # noqa: F401
    schema_schedules,  # noqa: F401
    schema_tokens,  # noqa: F401
    schema_webhooks,  # noqa: F401
)
