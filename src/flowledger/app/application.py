"""The application: one object that opens an :class:`Engine` and exposes one class per
resource. Every face (CLI, HTTP API, web UI) calls these operations and only them::

    async with App("sqlite:///flow.db") as app:
        doc = await app.executions.start(StartExecution(workflow="hello", input={}))
        page = await app.executions.list(ListExecutions(status="Completed", limit=10))

Waking workers: the store wakes them with the write that makes work claimable (an
execution nobody holds, an input, a cancel: on PostgreSQL a NOTIFY on the channel workers
LISTEN on, committed with it; on SQLite, which has no channel between processes, this
process's waiting workers, while the others see the commit within 100 ms:
``SQLiteStore.wait_for_work``). On top of that, :meth:`App.wake_here` wakes this process's
workers at once: ``App.work_ready`` is set and every callback given to :meth:`App.on_work`
is called (a server that runs workers in-process registers its worker's wake-up there).
A job run created for workers starts its first workflow at once, a start like any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from flowledger.app.changes import ChangeHub
from flowledger.app.cursors import META_KEY, CursorCodec
from flowledger.app.executions import Executions
from flowledger.app.slots import Slots
from flowledger.app.workflows import Workflows
from flowledger.config import Limits, Settings
from flowledger.errors import DatabaseUnreachableError, StorageError
from flowledger.runtime.engine import Engine
from flowledger.storage import open_store

if TYPE_CHECKING:  # prometheus_client is imported on the first use of the metrics
    from flowledger.app.artifacts import Artifacts
    from flowledger.app.console import Console
    from flowledger.app.database import Database
    from flowledger.app.entities import Entities
    from flowledger.app.hooks import Hooks
    from flowledger.app.job_runs import JobRunsApp
    from flowledger.app.metrics import ServiceMetrics
    from flowledger.app.retention import Retention
    from flowledger.app.seed import Seed
    from flowledger.app.sessions import Sessions
    from flowledger.app.step_types import StepTypes
    from flowledger.app.steplogs import StepLogs
    from flowledger.app.streams import EventStreams
    from flowledger.app.subscriptions import Subscriptions
    from flowledger.app.tokens import Tokens
    from flowledger.app.views import Views


#: Longest pause between two tries of ``App.open_waiting``.
OPEN_WAIT_MAX = 30.0


class App:
    """The application layer over one engine (opened and closed with it)."""

    def __init__(
        self,
        db: str | None = None,
        *,
        plugins: Sequence[str] = (),
        lease: timedelta | None = None,
        engine: Engine | None = None,
        cursor_key: bytes | None = None,
        settings: Settings | None = None,
        limits: Limits | None = None,
        create: bool = True,
    ) -> None:
        # create=False: a face's read-only command; a missing SQLite file raises
        # MissingDatabaseError instead of being created empty.
        self.engine = engine or Engine(
            db, plugins=plugins, lease=lease, settings=settings, create=create
        )
        self._own_engine = engine is None
        configured = self.engine.settings.cursor_key
        self._cursor_key = cursor_key or (configured.encode() if configured else None)
        #: What one request may carry (the faces read them from Settings.limits).
        self.limits = limits or self.engine.settings.limits
        self._codec: CursorCodec | None = None
        self._wakers: list[Callable[[], None]] = []
        self.work_ready = asyncio.Event()
        self.workflows = Workflows(self.engine, self._cursors, self.limits)
        #: Wakes long polls and event streams when executions change (app.changes).
        self.changes = ChangeHub(self.engine)
        #: What one caller may hold open at once (streams, waits: app.slots).
        self.slots = Slots(self.limits)
        self.executions = Executions(
            self.engine,
            self._cursors,
            # Starts, inputs and cancels wake other processes' workers in their own
            # writes (Store.create_execution, send_signal): here, this one's at once.
            self.wake_here,
            self.workflows.find,
            self.limits,
            hub=self.changes,
            slots=self.slots,
            check_children=self.workflows.check_children,
        )
        self.workflows.wake = self.wake_here  # a trigger or a backfill wakes workers
        self._metrics: ServiceMetrics | None = None

    # The other resources are built (and their modules imported) on first use: a command
    # that runs one workflow does not load tokens, entities or the web UI's read models.

    @cached_property
    def streams(self) -> EventStreams:
        """Live event streams (SSE on the HTTP face)."""
        from flowledger.app.streams import EventStreams

        return EventStreams(self.engine, self.changes, self.slots, self.tokens)

    @cached_property
    def step_logs(self) -> StepLogs:
        """Step logs (``executions logs``)."""
        from flowledger.app.steplogs import StepLogs

        return StepLogs(self.engine, self.changes, self.limits)

    @cached_property
    def step_types(self) -> StepTypes:
        """The step-type catalogue (``steps list|show``): the registry's, no database."""
        from flowledger.app.step_types import StepTypes

        return StepTypes(self.engine.registry)

    @cached_property
    def retention(self) -> Retention:
        """Pruning of finished executions."""
        from flowledger.app.retention import Retention

        return Retention(self.engine)

    @cached_property
    def database(self) -> Database:
        """Facts about the database (``db info``)."""
        from flowledger.app.database import Database

        return Database(self.engine)

    @cached_property
    def seed(self) -> Seed:
        """The seed's runs resource and instance-state view, over the executions."""
        from flowledger.app.seed import Seed

        return Seed(self.engine, self.executions, self._cursors, self.limits)

    @cached_property
    def job_runs(self) -> JobRunsApp:
        from flowledger.app.job_runs import JobRunsApp

        return JobRunsApp(self.engine, self.wake_here, self._cursors, self.limits)

    @cached_property
    def entities(self) -> Entities:
        from flowledger.app.entities import Entities

        return Entities(self.engine, self._cursors, self.limits)

    @cached_property
    def artifacts(self) -> Artifacts:
        from flowledger.app.artifacts import Artifacts

        return Artifacts(self.engine, self._cursors, self.limits)

    @cached_property
    def hooks(self) -> Hooks:
        from flowledger.app.hooks import Hooks

        return Hooks(self.engine, self.wake_here)

    @cached_property
    def subscriptions(self) -> Subscriptions:
        from flowledger.app.subscriptions import Subscriptions

        return Subscriptions(self.engine, self._cursors, self.limits)

    @cached_property
    def tokens(self) -> Tokens:
        from flowledger.app.tokens import Tokens

        return Tokens(self.engine, self._cursors, self.limits)

    @cached_property
    def views(self) -> Views:
        """The web UI's read models."""
        from flowledger.app.views import Views

        return Views(self.engine, self.artifacts)

    @cached_property
    def console(self) -> Console:
        """The web UI's expression console."""
        from flowledger.app.console import Console

        return Console(self.engine)

    @cached_property
    def sessions(self) -> Sessions:
        """The web UI's browser sessions."""
        from flowledger.app.sessions import Sessions

        return Sessions(self.engine, self.tokens)

    @property
    def metrics(self) -> ServiceMetrics:
        """Prometheus metrics of this application (app.metrics); the first use attaches
        their observer to the engine."""
        if self._metrics is None:
            from flowledger.app.metrics import ServiceMetrics

            self._metrics = ServiceMetrics(self.engine)
            self.engine.add_observer(self._metrics)
        return self._metrics

    async def open(self) -> App:
        await self.engine.open()
        await self.changes.open()
        return self

    async def open_waiting(self, on_wait: Callable[[DatabaseUnreachableError, float], None]) -> App:
        """``open``, waiting for a database server that cannot be reached yet (not running,
        starting up, shutting down: a worker started with its database at boot, or during
        a failover), as a running worker waits out one that went away: ``on_wait(error,
        seconds)`` before each pause, 1 s doubling to 30 s. Any other failure (a refused
        password, a missing database) is raised at once: waiting does not mend it."""
        pause = 1.0
        while True:
            try:
                return await self.open()
            except DatabaseUnreachableError as exc:
                on_wait(exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, OPEN_WAIT_MAX)

    async def close(self) -> None:
        if "tokens" in self.__dict__:  # built (a cached_property): its revision watch stops
            await self.tokens.close()
        await self.changes.close()
        if self._own_engine:
            await self.engine.close()

    async def __aenter__(self) -> App:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def ping(self) -> None:
        """Readiness: StorageError, saying why, unless the database answers, has the schema
        this build uses, and takes writes (probed when one failed lately: see
        storage.readiness). A connection the database dropped (a restart) is read on once
        more first: one such answer took a node out of its load balancer for nothing."""
        try:
            await self.engine.store.check_ready()
        except StorageError:  # the database's condition, in the store's words
            raise
        except SQLAlchemyError as exc:  # any other failure of the query: not ready either
            from flowledger.storage.sqlpart import driver_message

            raise StorageError(f"the database does not answer: {driver_message(exc)}") from None

    def end_waits(self) -> None:
        """The server stops: end every event stream and answer every long poll now, as
        things are (clients reconnect, to another node or to this one once it is back)."""
        self.changes.end_waits()
        self.streams.end()

    def on_work(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever this application makes work claimable."""
        self._wakers.append(callback)

    async def wake_here(self) -> None:
        """Wake this process's workers at once (``work_ready``, ``on_work`` callbacks),
        for work whose own write told the other processes already."""
        self.work_ready.set()
        for callback in self._wakers:
            callback()

    async def _cursors(self) -> CursorCodec:
        if self._codec is None:
            key = self._cursor_key
            if key is None:
                key = (await self.engine.store.meta_secret(META_KEY)).encode()
            self._codec = CursorCodec(key)
        return self._codec


async def upgrade_database(db_url: str, settings: Settings | None = None) -> list[str]:
    """Apply pending schema migrations; the revision ids applied, oldest first. (Opening
    an App also migrates; this is the explicit ``flowledger db upgrade``.)"""
    store = open_store(db_url, settings)
    try:
        return await store.upgrade()
    finally:
        await store.close()
