"""The storage interface: domain verbs above, SQL below. Chosen from the database URL.

JSON columns travel as text: the runtime serializes them (it redacts secrets on
the way), so no backend ever sees a secret value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flowledger.errors import InvalidInputError
from flowledger.jsonvalues import check_json_value
from flowledger.storage.artifacts import ArtifactStore
from flowledger.storage.counts import CountStore
from flowledger.storage.descendants import DescendantStore
from flowledger.storage.entities import EntityStore
from flowledger.storage.gauges import GaugeStore
from flowledger.storage.input_match import InputMatch
from flowledger.storage.jobs import JobStore
from flowledger.storage.pruning import PruneStore
from flowledger.storage.pushes import PushStore
from flowledger.storage.readiness import ReadinessStore
from flowledger.storage.schedules import ScheduleStore
from flowledger.storage.sizes import SizeStore
from flowledger.storage.steplogs import StepLogStore
from flowledger.storage.tokens import TokenStore
from flowledger.storage.webhooks import WebhookStore
from flowledger.types import ExecutionStatus, ExecutionStatusName
from flowledger.types import Row as Row  # re-exported: the store speaks in rows

#: ``wake_at`` of an execution parked with no timer at all (it waits for a signal).
NEVER = datetime(9999, 1, 1, tzinfo=UTC)
#: The most workflow versions a claim leaves out (``claim_executions``' ``skip``): each is
#: a bound parameter of the claim's SQL.
MOST_SKIPPED = 64


@dataclass(frozen=True)
class WorkflowVersion:
    id: str
    name: str
    version: int
    checksum: str
    document: str
    created_at: datetime
    #: The text it was first stored from, as written; None when stored before 0010.
    source: str | None = None


@dataclass(frozen=True)
class VersionSummary:
    """A stored version without its document and text: what a list of versions shows.
    Decision: listing reads these, since a workflow pushed on every deploy has thousands
    of versions and each document may be up to 1 MiB (300 versions of a 100 KB one: a
    GET of the workflow read 65 MB)."""

    id: str
    name: str
    version: int
    checksum: str
    created_at: datetime


def claimable_when_created(execution: Row) -> bool:
    """A new execution nobody holds: the workers' to claim (a held one, ``Engine.start``
    with ``hold``, is driven by its creator). Its creation wakes the idle workers."""
    return execution.get("lease_owner") is None


#: A row a round writes: a dict of its columns, or (the journal's) its driver parameters
#: in a column order of storage.rowparams, timestamps in the store's form (``timestamp_param``).
RowParams = Row | tuple[Any, ...]


@dataclass
class ChildGuard:
    """The children one ``sys.sub_workflow`` step starts in a round: the commit creates
    them only while at most ``tolerated`` of the step's children ended ``Failed`` or
    ``Cancelled``: the ``known_failed`` its parent read, and those of ``running`` (the
    others it started, not known to have ended: at most its concurrency, so the check
    reads a few rows by key) that have since. Checked in the commit's transaction,
    after the parent's row is locked: a child's final commit signals its parent
    (updating its row) in the transaction that records its end, so a failure committed
    before the creation is always seen, in a group commit too."""

    known_failed: int
    running: list[str]
    tolerated: int
    child_ids: list[str]
    #: The step execution whose row lists the children, and its ``children`` column
    #: without ``child_ids``: what the commit writes there when it refuses them.
    step_execution_id: str
    children_if_refused: str | None
    #: Set by the commit when it left the children out.
    refused: bool = False


@dataclass(init=False)
class Batch:
    """Every change one scheduler round made to one execution: committed atomically or not at all.

    ``epoch`` is the fencing token: the commit is refused when the execution's lease
    has since passed to another owner.
    """

    execution_id: str
    epoch: int
    execution: Row
    insert_steps: list[RowParams]
    update_steps: list[RowParams]
    events: list[RowParams]
    #: Executions this round creates (children of a sub-workflow step), with their events.
    create_executions: list[Row]
    create_events: list[Row]
    #: Signals to other executions (a child's end to its parent, a cancel to children);
    #: each wakes the execution it is for.
    signals: list[Row]
    #: Ids of this execution's signals the round acted on.
    consumed_signals: list[str]
    #: Status changes outbound webhooks report (``message_id, event, workflow_name,
    #: execution_id, payload, at``): the commit turns each into one outbox row per
    #: matching subscription (none, at the cost of one cheap statement, when none match).
    notifications: list[Row]
    #: Lines step handlers logged (``step_logs`` rows without ``id``), with their results.
    step_logs: list[Row]
    #: Conditions on ``create_executions`` (the children of sub-workflow steps).
    child_guards: list[ChildGuard]

    # Written out, not generated: a chain makes one Batch per step, and the generated
    # __init__ calls a factory per defaulted field (~120 bytecodes for twelve fields).
    def __init__(
        self,
        execution_id: str,
        epoch: int,
        execution: Row | None = None,
        insert_steps: list[RowParams] | None = None,
        update_steps: list[RowParams] | None = None,
        events: list[RowParams] | None = None,
        create_executions: list[Row] | None = None,
        create_events: list[Row] | None = None,
        signals: list[Row] | None = None,
        consumed_signals: list[str] | None = None,
        notifications: list[Row] | None = None,
        step_logs: list[Row] | None = None,
        child_guards: list[ChildGuard] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.epoch = epoch
        self.execution = {} if execution is None else execution
        self.insert_steps = [] if insert_steps is None else insert_steps
        self.update_steps = [] if update_steps is None else update_steps
        self.events = [] if events is None else events
        self.create_executions = [] if create_executions is None else create_executions
        self.create_events = [] if create_events is None else create_events
        self.signals = [] if signals is None else signals
        self.consumed_signals = [] if consumed_signals is None else consumed_signals
        self.notifications = [] if notifications is None else notifications
        self.step_logs = [] if step_logs is None else step_logs
        self.child_guards = [] if child_guards is None else child_guards

    def links(self) -> bool:
        """The round reaches other executions (creates children, signals, consumes
        signals): writes that go through SQLAlchemy, outside every fast path."""
        return bool(self.create_executions or self.signals or self.consumed_signals)


#: A status an ExecutionQuery takes: the enum, or its value as documents spell it.
StatusLike = ExecutionStatus | ExecutionStatusName


@dataclass(frozen=True)
class ExecutionQuery:
    """Which executions ``Engine.list_executions`` answers. An unknown ``status`` is an
    InvalidInputError naming the known ones (a typo matched nothing, silently)."""

    #: A status, or several (any of them).
    status: StatusLike | tuple[StatusLike, ...] | None = None
    workflow: str | None = None
    correlation_id: str | None = None
    parent_id: str | None = None
    #: Only executions without a parent.
    top_level: bool = False
    job_run_id: str | None = None
    created_by: str | None = None
    #: Only executions created at or after / strictly before these moments.
    created_after: datetime | None = None
    created_before: datetime | None = None
    #: Only executions whose input holds every one of these (storage.input_match).
    input: tuple[InputMatch, ...] = ()
    limit: int = 50
    #: Keyset cursor: only executions created before this (created_at, id).
    before: tuple[datetime, str] | None = None

    def __post_init__(self) -> None:
        for name in ("workflow", "correlation_id", "parent_id", "job_run_id", "created_by"):
            check_json_value(getattr(self, name), name)  # a lone surrogate: no UTF-8 for it
        status: Any = self.status
        if status is None or isinstance(status, str):
            if status is not None:
                object.__setattr__(self, "status", _status(status))
            return
        # Several: any collection of them (a list too), kept as a tuple.
        many = status if isinstance(status, tuple | list | set | frozenset) else (status,)
        object.__setattr__(self, "status", tuple(_status(value) for value in many))


def _status(value: Any) -> ExecutionStatusName:
    try:
        # Kept as plain text: a driver may dump an enum by its name (psycopg does).
        return cast(ExecutionStatusName, str(ExecutionStatus(value)))
    except ValueError:
        known = ", ".join(ExecutionStatus)
        raise InvalidInputError(
            f"{value!r} is not an execution status; use one of {known}", ("status",)
        ) from None


class SignalBlocked(Exception):
    """``send_signal(..., unless_pending=kind)`` found a signal of that kind pending."""


class Store(
    DescendantStore,
    TokenStore,
    EntityStore,
    ScheduleStore,
    JobStore,
    ArtifactStore,
    WebhookStore,
    GaugeStore,
    CountStore,
    StepLogStore,
    PushStore,
    PruneStore,
    SizeStore,
    ReadinessStore,
    ABC,
):
    """What the runtime and the faces need from a database."""

    url: str
    #: A timestamp as this store's driver takes it (the form a round's rows carry:
    #: storage.rowparams).
    timestamp_param: Callable[[datetime], Any]

    @abstractmethod
    async def initialize(self) -> None:
        """Create or upgrade the schema; safe to call on every start."""

    @abstractmethod
    async def upgrade(self) -> list[str]:
        """Apply pending schema migrations; return the revision ids applied (oldest first)."""

    @abstractmethod
    async def close(self) -> None: ...

    # -- workflow versions --------------------------------------------------------------------

    @abstractmethod
    async def save_workflow_version(
        self,
        name: str,
        checksum: str,
        document: str,
        format_version: int,
        source: str | None = None,
    ) -> WorkflowVersion:
        """Store a definition; the same content under the same name gets the same version
        (which keeps the ``source`` text it was first stored with)."""

    @abstractmethod
    async def get_workflow_version(self, version_id: str) -> WorkflowVersion | None: ...

    @abstractmethod
    async def list_workflow_versions(self, name: str | None = None) -> list[VersionSummary]:
        """Every stored version (of ``name``), oldest first, without its document."""

    @abstractmethod
    async def workflow_version_id(
        self, name: str, version: int | None = None, *, pushed_only: bool = False
    ) -> str | None:
        """The id of a stored version of ``name``: that version number when given, else
        the pushed (live) one, else (unless ``pushed_only``) the newest; None when there
        is none such. One small read: a start by name pays it, not a read of every
        version's document."""

    @abstractmethod
    async def activate_workflow(self, name: str, version_id: str) -> bool:
        """Make ``version_id`` the pushed version of ``name``; False when it already was."""

    @abstractmethod
    async def first_pushes(self) -> dict[str, datetime]:
        """When each pushed workflow name was pushed the first time."""

    @abstractmethod
    async def active_workflow_ids(self) -> list[tuple[str, datetime]]:
        """Every pushed workflow's live version whose triggers are enabled (schedules,
        webhooks and entity triggers read this) as (version id, pushed at), by name. Not
        the definitions: a version never changes, so the engine reads each one once
        (``Engine.workflow_version``), not on every webhook request or schedule look."""

    # -- executions ---------------------------------------------------------------------------

    @abstractmethod
    async def create_execution(
        self,
        execution: Row,
        events: list[Row],
        steps: Sequence[Row] = (),
        artifacts: Sequence[Row] = (),
    ) -> str:
        """Insert a new execution (with step rows it starts from, for a rerun, and the
        artifact rows of their files, already in place); return its id. One transaction.

        When its ``trigger_key`` is already taken (the schedule tick, entity event, job item
        or step child was started before), nothing is written and the existing id returns.
        """

    @abstractmethod
    async def find_by_trigger_key(self, trigger_key: str) -> str | None: ...

    # -- signals: what the outside world tells an execution -----------------------------------

    @abstractmethod
    async def send_signal(self, signal: Row, *, unless_pending: str | None = None) -> bool:
        """Record a signal and wake its execution (make it claimable now if it was parked),
        and the idle workers (as ``notify_work`` does, in the signal's own write). False,
        and nothing written, when a signal with its id was sent before: a signal whose id
        names what it answers (an input: the step execution) is sent once.
        :class:`SignalBlocked`, and nothing written, when a signal of the kind
        ``unless_pending`` waits unconsumed (checked in the same transaction: an input
        and a cancel sent at once cannot both be taken)."""

    @abstractmethod
    async def pending_signals(self, execution_id: str) -> list[Row]:
        """Signals not yet acted on, oldest first."""

    @abstractmethod
    async def commit(self, batch: Batch, *, group: bool = False) -> None:
        """Apply a batch atomically; raise LeaseLostError if ``batch.epoch`` is stale.

        ``group`` lets the batch share a transaction with others committed in the same
        event-loop tick (worth it when many executions run in one process).
        """

    @abstractmethod
    async def get_execution(self, execution_id: str) -> Row | None: ...

    @abstractmethod
    async def find_executions(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids starting with ``prefix`` (lets people type a short id)."""

    @abstractmethod
    async def get_step_executions(self, execution_id: str) -> list[Row]: ...

    @abstractmethod
    async def read_execution(self, execution_id: str) -> tuple[Row, list[Row]] | None:
        """The execution's row and its step rows in one read (one transaction, one hop:
        what its document is built from); None when there is no such execution."""

    @abstractmethod
    async def list_executions(self, query: ExecutionQuery) -> list[Row]: ...

    @abstractmethod
    async def count_executions(self, query: ExecutionQuery) -> int:
        """How many executions ``query`` selects (its limit and cursor aside)."""

    @abstractmethod
    async def get_events(
        self, execution_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Row]: ...

    @abstractmethod
    async def last_event_at(self, execution_id: str, kind: str) -> datetime | None:
        """When the execution's last event of ``kind`` happened (None: it has none)."""

    @abstractmethod
    async def last_event_seq(self, execution_id: str) -> int:
        """The execution's last event number (0 before any): what a runner taking it
        over counts on from. Its row's ``event_seq`` may lag while it runs
        (runtime.journal), its events never do."""

    # -- ownership: leases, claims and wake-ups, all on the database's clock ------------------

    @abstractmethod
    async def db_now(self) -> datetime:
        """The database's clock: leases and due timers are judged by it, never by a worker's.
        Raises StorageError when the database cannot answer (unreachable, restarting)."""

    @abstractmethod
    async def acquire_lease(
        self, execution_id: str, owner: str, lease: timedelta, *, steal_from: str | None = None
    ) -> int | None:
        """Take the execution if it is free, expired or already ours; return the new epoch.

        ``steal_from`` also takes it from that owner, for a holder known to be dead.
        """

    async def acquire_lease_row(
        self, execution_id: str, owner: str, lease: timedelta, *, steal_from: str | None = None
    ) -> Row | None:
        """``acquire_lease``, answering with the execution's row as the lease left it (its
        ``lease_epoch`` is the new epoch), or None when not taken. SQL stores answer in one
        write; this default takes two calls."""
        if await self.acquire_lease(execution_id, owner, lease, steal_from=steal_from) is None:
            return None
        return await self.get_execution(execution_id)

    @abstractmethod
    async def claim_executions(
        self, owner: str, limit: int, lease: timedelta, *, skip: Sequence[str] = ()
    ) -> list[tuple[str, int]]:
        """Lease up to ``limit`` runnable executions: ``(id, epoch)`` for each one won.

        Runnable: NotStarted, or InProgress whose lease is free or expired and whose
        ``wake_at`` (its next timer, when parked) has come, or AwaitingUserInput whose
        ``wake_at`` (input arrived, or its due time) has come. Two claimers never win the
        same one. ``skip``: workflow version ids (at most MOST_SKIPPED) whose executions
        the claimer cannot run, left for others (they do not count against ``limit``).
        """

    async def claim_execution_rows(
        self, owner: str, limit: int, lease: timedelta, *, skip: Sequence[str] = ()
    ) -> list[Row]:
        """``claim_executions`` answering with each won execution's row as the claim left it
        (its ``lease_epoch`` is the new epoch), so the caller need not read it again.
        PostgreSQL answers in one statement; this default reads each row after the claim."""
        rows: list[Row] = []
        for execution_id, epoch in await self.claim_executions(owner, limit, lease, skip=skip):
            row = await self.get_execution(execution_id)
            if row is None:  # deleted meanwhile: give the lease back, nothing to run
                await self.release_lease(execution_id, epoch)
            else:
                rows.append({**row, "lease_epoch": epoch})
        return rows

    @abstractmethod
    async def renew_leases(
        self, owner: str, leases: Mapping[str, int], lease: timedelta
    ) -> set[str]:
        """Extend the leases we still hold (id → epoch); return the ids that are still ours.
        Raises StorageError when the database's condition refuses it (locked past the busy
        timeout, unreachable, restarting): the heartbeat says so in a line and beats again."""

    @abstractmethod
    async def release_lease(
        self,
        execution_id: str,
        epoch: int,
        wake_at: datetime | None = None,
        *,
        failed: bool = False,
    ) -> None:
        """Give the execution up; ``wake_at`` parks it until its next timer is due.

        A signal that arrived and was not consumed makes it claimable again at once,
        whatever ``wake_at`` says: a wake-up is never lost to a race with parking. Not
        when the run ``failed`` here: ``wake_at`` is then when to try again, and a signal
        waiting since before the failure (the input that woke it) would have every
        worker claim and fail it in a tight loop; a signal sent afterwards still wakes it.
        """

    async def release_lease_row(
        self, execution_id: str, epoch: int, wake_at: datetime | None = None
    ) -> Row | None:
        """``release_lease``, answering with the execution's row as it is afterwards (None:
        no such execution). SQL stores answer in one write; this default takes two calls."""
        await self.release_lease(execution_id, epoch, wake_at)
        return await self.get_execution(execution_id)

    @abstractmethod
    async def wait_for_work(self, timeout: float, *, skip: Sequence[str] = ()) -> None:
        """Return when new work may be claimable, or after ``timeout`` seconds. ``skip``:
        as the claim's, where the store looks for claimable work itself (SQLite)."""

    @abstractmethod
    async def meta_secret(self, key: str) -> str:
        """A random secret stored under ``key`` in the database, created on first use
        (every process on the database reads the same one)."""

    @abstractmethod
    async def leases_held_on(self, host: str, limit: int) -> list[tuple[str, str]]:
        """(id, lease owner) of unfinished executions leased, unexpired, to an owner on
        ``host`` (owners are ``host:pid:nonce``): what a worker there checks for holders
        that died."""

    @abstractmethod
    async def meta_value(self, key: str) -> str | None:
        """The value stored under ``key`` in ``flowledger_meta`` (None: none)."""

    @abstractmethod
    async def put_meta_value(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` in ``flowledger_meta``, replacing one there."""

    @abstractmethod
    async def notify_work(self) -> None:
        """Tell waiting workers that something became claimable."""

    @abstractmethod
    def hear_signals(self, heard: Callable[[str], None]) -> Callable[[], None]:
        """From now on call ``heard`` with the id of each execution a signal is sent to
        through this store (a cancel, an input, a child's end or question written by a
        round), on the event loop right after the write committed: a runner of this
        process looks at once, on either database. Returns what stops it."""

    async def watch_signals(self, heard: Callable[[str], None]) -> None:
        """Call ``heard`` with the id of each execution another process sends a signal to,
        until cancelled: the process holding it looks at once. The signals this store
        sends are left out (:meth:`hear_signals` told them already). Returns at once where
        the database has no channel between processes (SQLite: the holder looks at its
        next poll)."""
