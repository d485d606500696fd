"""The Engine: load definitions, start, run, resume and inspect executions.

An Engine is an explicit object (no process-wide state): it owns one store, one
HTTP client, one template engine and one step registry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from sqlalchemy.engine import make_url

from flowledger.artifacts.service import ArtifactService, default_artifacts_root
from flowledger.config import DEFAULT_LEASE, Settings
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.compiler import load_workflow, load_workflow_text
from flowledger.entities.service import EntityService
from flowledger.errors import (
    EngineClosedError,
    EngineLoopError,
    MissingStepTypesError,
    NotFoundError,
)
from flowledger.logs import log_extra
from flowledger.runtime import control
from flowledger.runtime.catalog import Catalog, version_source, with_stand_ins
from flowledger.runtime.creation import Lineage
from flowledger.runtime.documents import event_document, execution_document, waits_on_children
from flowledger.runtime.driving import Driving
from flowledger.runtime.ids import known_execution_id
from flowledger.runtime.lazy_http import lazy_client
from flowledger.runtime.missing import execution_row
from flowledger.runtime.observer import (
    EventCallback,
    EventCallbackObserver,
    ExecutionInfo,
    Observer,
    Observers,
)
from flowledger.runtime.orphans import process_owner
from flowledger.runtime.running import CLOSE_CANCEL_WAIT, RunsHere
from flowledger.runtime.services import Services
from flowledger.runtime.starting import Starts
from flowledger.runtime.status import ExecutionStatus
from flowledger.steps.registry import StepRegistry
from flowledger.storage import ExecutionQuery, Row, Store, WorkflowVersion, open_store
from flowledger.storage.lanes import Lane
from flowledger.templates import TemplateEngine, TemplateLimits
from flowledger.timeutil import Clock
from flowledger.types import (
    EventDocument,
    ExecutionDocument,
    ExecutionStatusDocument,
    PendingInput,
)

if TYPE_CHECKING:  # the HTTP client is made on first use (runtime.lazy_http)
    import httpx

#: How long an execution stays ours without a heartbeat; renewed every third of it.
LEASE = DEFAULT_LEASE

#: How long ``close`` lets the steps an engine runs finish (and be recorded) before it
#: cancels them; either way it releases their executions.
CLOSE_GRACE = 10.0
log = logging.getLogger(__name__)
T = TypeVar("T")
#: What every part of an Engine that is not open says (EngineClosedError).
NOT_OPEN = "the engine is not open; use 'async with Engine(...)'"


def _in_memory(db_url: str) -> bool:
    """An in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``)."""
    if not db_url.startswith("sqlite:"):
        return False
    database = make_url(db_url).database
    return not database or database == ":memory:"


async def _on_a_thread(body: Callable[[], T]) -> T:
    """``body`` on a thread of its own that ends with it: ``asyncio.to_thread`` made the
    loop's default executor, whose idle thread then stayed for the loop's life, in an
    application that embeds the engine and had never used that executor."""
    lane = Lane("flowledger-open", 1)
    try:
        return await lane.run(body)
    finally:
        await lane.close()


def default_db_url() -> str:
    """``FLOWLEDGER_DB`` or the default: for the faces (the CLI), which read the environment."""
    return Settings.from_env().db_url


class Engine:
    """Run workflows durably on one database.

    Use it as an async context manager::

        async with Engine("sqlite:///flow.db") as engine:
            workflow = engine.load("examples/hello.yaml")
            execution = await engine.run(workflow, {"name": "Ada"})
            print(execution["runtimeStatus"], execution["output"])
    """

    def __init__(
        self,
        db: str | None = None,
        *,
        registry: StepRegistry | None = None,
        plugins: Sequence[str] = (),
        entry_points: bool = True,
        template_limits: TemplateLimits | None = None,
        http: httpx.AsyncClient | None = None,
        owner: str | None = None,
        lease: timedelta | None = None,
        settings: Settings | None = None,
        observers: Sequence[Observer] = (),
        create: bool = True,
        clock: Clock | None = None,
    ) -> None:
        # The environment is read here, once (or never, given settings); everything below
        # (storage, leases, egress, artifacts) gets what it needs from this object.
        self.settings = settings = settings or Settings.from_env()
        self.db_url = db or settings.db_url
        #: False for commands that only read: a missing SQLite file is an error, not created.
        self.create = create
        self.registry = registry or StepRegistry.with_builtins()
        if entry_points and registry is None:
            self.registry.load_entry_points()
        for module in plugins:
            self.registry.load_module(module)
        self.templates = TemplateEngine(template_limits)
        self._http = http
        self._own_http = http is None
        self._store: Store | None = None
        self._services: Services | None = None
        self.owner = owner or process_owner()
        self.lease = lease if lease is not None else settings.lease
        #: The time of its executions (a test's: flowledger.testing.VirtualClock).
        self.clock = clock if clock is not None else Clock()
        #: The workflow versions it knows: stored, resolved by name, compiled once.
        self._catalog = Catalog(self.registry, self.templates, lambda: self.store, self._check_open)
        #: Stored versions that cannot run here for want of custom step types (by version
        #: id, the error that says which): a worker's claims leave their executions to the
        #: workers that have the plugins (Catalog.unrunnable says more).
        self.unrunnable: dict[str, MissingStepTypesError] = self._catalog.unrunnable
        self._starts = Starts(
            load=self.load,
            register=self._catalog.register,
            store=lambda: self.store,
            get_execution=self.get_execution,
            clock=self.clock,
            owner=self.owner,
            lease=self.lease,
        )
        #: Told what this engine commits and claims (runtime.observer: cheap, never blocking).
        self.observers = Observers(self.owner, observers)
        #: Executions this engine runs right now, by id (``drive``, ``run``, ``settle`` and
        #: a worker's ``run_owned``): a second drive of one joins the first instead of
        #: taking the lease from it (the same owner may always take its own lease), and
        #: ``close`` gives them back.
        self._runs = RunsHere(lambda: self.store, self.clock)
        self.clock.bind(self._runs.runners)
        self._drives = Driving(
            self._runs,
            self._catalog,
            store=lambda: self.store,
            services=lambda: self._services,
            get_execution=self.get_execution,
            check_loop=self._check_loop,
            owner=self.owner,
            lease=self.lease,
            clock=self.clock,
            observers=self.observers,
            otel=settings.otel,
        )
        #: The workers running on it (``worker_started``): their stop, and their end.
        self._workers: dict[object, tuple[Callable[[], None], asyncio.Event]] = {}
        self._entities: EntityService | None = None
        self._artifacts: ArtifactService | None = None
        #: The temporary artifacts folder of an in-memory database (removed by ``close``).
        self._scratch: Path | None = None
        #: The event loop that opened the engine: the only one it may be used from.
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> Engine:
        self._check_loop()
        if self._store is None:
            # Made on a thread: importing the database driver, creating SQLAlchemy's engine
            # and looking at the file held the loop 0.13-0.35 s (tour 23 F14); what follows
            # waits on the store's own threads (its migrations among them).
            store, root = await _on_a_thread(self._open_store)
            try:
                await store.initialize()
            except BaseException:  # its lane threads and connections go with it
                await store.close()
                await self._remove_scratch()
                raise
            self._store = store
            # A signal this engine sends (a cancel, an input, a child's end) pokes the run
            # here that it is for, once it committed: one path for them all, either database.
            store.hear_signals(self._runs.poke)
            # The engine's own client connects only where the egress policy allows (SSRF);
            # it ignores proxy variables, which would connect on its behalf unchecked.
            http = self._http or lazy_client(self._new_http_client)
            self._http = http
            self._entities = entities = EntityService(store, self.clock)
            self._artifacts = artifacts = ArtifactService(
                store, root, budget=self.settings.output_budget
            )
            self._services = Services(
                store,
                http,
                self.templates,
                self.registry,
                self.clock,
                entities_for=entities.bind,
                artifacts_for=artifacts.bind,
                offload_output=artifacts.offload,
                read_artifact=artifacts.read_output,
                resolve_workflow=self._catalog.resolve_child,
                workflow_for_version=self._catalog.workflow_for_version,
                step_log_level=logging.getLevelNamesMapping()[self.settings.step_log_level],
                step_log_limit=self.settings.step_log_limit,
                max_descendants=self.settings.limits.max_descendants,
                max_step_cuts=self.settings.max_step_cuts,
            )
            self.clock.synchronize(await store.db_now())
            self._loop = asyncio.get_running_loop()
        return self

    def _open_store(self) -> tuple[Store, Path]:
        """The store (not yet initialized) and the artifacts folder (on a thread: both
        touch the disk). An in-memory database's artifacts go to a temporary folder that
        ``close`` removes, as the database goes then: they went to ./flowledger-artifacts
        in the working directory, and stayed there (tour 23 F8)."""
        store = open_store(self.db_url, self.settings, create=self.create)
        if self.settings.artifacts_dir is None and _in_memory(self.db_url):
            self._scratch = Path(tempfile.mkdtemp(prefix="flowledger-artifacts-"))
            return store, self._scratch
        return store, default_artifacts_root(self.db_url, self.settings)

    async def _remove_scratch(self) -> None:
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            await _on_a_thread(lambda: shutil.rmtree(scratch, ignore_errors=True))

    def _check_open(self) -> None:
        if self._store is None:
            raise EngineClosedError(NOT_OPEN)

    def _check_loop(self) -> None:
        """Refuse, at once, use from an event loop other than the one that opened the
        engine (used from two loops at once, its runs hung: their connections, lease
        heartbeat and group commits wait on futures of the loop that opened it)."""
        loop = self._loop
        if loop is None:
            return
        running = asyncio._get_running_loop()
        if running is not None and running is not loop:
            raise EngineLoopError(
                "this Engine was opened on another event loop: an Engine belongs to the "
                "loop that opened it (its database connections, lease heartbeat and HTTP "
                "client live there); open an Engine in each loop (each thread that runs "
                "asyncio.run), or hand the work to the engine's loop "
                "(asyncio.run_coroutine_threadsafe)"
            )

    def _new_http_client(self) -> httpx.AsyncClient:
        import httpx

        from flowledger.steps.transport import GuardedTransport

        return httpx.AsyncClient(
            timeout=httpx.Timeout(30.0),
            follow_redirects=False,
            transport=GuardedTransport(self.settings.http_allow),
            trust_env=False,
        )

    async def close(self, *, grace: float = CLOSE_GRACE) -> None:
        """Close the engine's database and HTTP client. Executions it runs right now
        (``drive``, ``run``, ``settle``, a worker's) are given back first, as a worker's
        drain does: each finishes and records the steps running now (for up to ``grace``
        seconds; those still running then are cancelled, and run again wherever the
        execution goes on), starts nothing new, and releases its lease, so any process
        carries it on at once. Their ``drive`` calls raise EngineClosedError.

        A :class:`~flowledger.Worker` running on the engine is stopped first, as its
        ``stop()`` does, and waited for: its runs are given back as above, and its
        ``run()`` returns. Tour 23: the store was closed under it, and the worker went on
        logging "cannot claim work (the store is closed)" every few seconds for ever."""
        if self._store is not None and (self._runs.by_id or self._workers):
            self._check_loop()
            self._runs.closing = True
            workers = list(self._workers.values())
            try:
                for stop, _ in workers:
                    stop()
                await self._runs.give_back(grace)
                await self._workers_ended([ended for _, ended in workers])
            finally:
                self._runs.closing = False
        await self._runs.stop_watching()
        if self._store is not None:
            await self._store.close()
            self._store = None
            await self._remove_scratch()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        self._services = None
        self._entities = None
        self._artifacts = None
        self._loop = None

    async def _workers_ended(self, ended: list[asyncio.Event]) -> None:
        """Wait for the stopped workers to end: their runs were given back already, so
        they end within their last claim and their duties' cancellation."""
        waits = [asyncio.ensure_future(event.wait()) for event in ended]
        if not waits:
            return
        try:
            _, late = await asyncio.wait(waits, timeout=CLOSE_CANCEL_WAIT)
        finally:
            for wait in waits:
                wait.cancel()
        if late:
            log.warning(
                "%d worker(s) had not stopped %gs after the engine asked them to; closing "
                "the engine under them",
                len(late),
                CLOSE_CANCEL_WAIT,
                extra=log_extra("close"),
            )

    def worker_started(self, stop: Callable[[], None]) -> Callable[[], None]:
        """A worker runs on this engine from now on (``Worker.run`` says so): ``close``
        calls ``stop`` and waits until the worker calls the function returned here, as it
        ends, before it closes the database."""
        self._check_open()
        ended = asyncio.Event()
        key = object()
        self._workers[key] = (stop, ended)

        def end() -> None:
            self._workers.pop(key, None)
            ended.set()

        return end

    async def __aenter__(self) -> Engine:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def store(self) -> Store:
        store = self._store
        if store is None:
            raise EngineClosedError(NOT_OPEN)
        if self._loop is not None and asyncio._get_running_loop() not in (self._loop, None):
            self._check_loop()
        return store

    # Every part that needs the engine open says so alike (EngineClosedError): before open
    # ``entities`` was an AttributeError, ``http`` a StorageError, and after close
    # ``entities`` answered and its calls failed with "the store is closed" (tour 23 F11).

    @property
    def http(self) -> httpx.AsyncClient:
        """The engine's HTTP client: it connects only where the egress policy allows
        (``sys.http_request`` and outbound webhooks both go through it)."""
        if self._http is None or self._store is None:
            raise EngineClosedError(NOT_OPEN)
        return self._http

    @property
    def entities(self) -> EntityService:
        """The entity store (types, entities, their events)."""
        if self._entities is None:
            raise EngineClosedError(NOT_OPEN)
        return self._entities

    @property
    def artifacts(self) -> ArtifactService:
        """Files steps saved and outputs kept as artifacts."""
        if self._artifacts is None:
            raise EngineClosedError(NOT_OPEN)
        return self._artifacts

    def add_observer(self, observer: Observer) -> None:
        """Tell ``observer`` what this engine does from now on (see runtime.observer)."""
        self.observers.add(observer)

    def on_events(self, callback: EventCallback) -> None:
        """Call ``callback(execution_id, events)`` after every commit of any execution."""
        self.observers.add(EventCallbackObserver(callback))

    # -- definitions --------------------------------------------------------------------------

    def load(self, path: str | os.PathLike[str]) -> CompiledWorkflow:
        """Load, validate and compile a definition file (raises DefinitionError)."""
        return load_workflow(path, self.registry, self.templates)

    def load_text(self, text: str, file: str = "<string>") -> CompiledWorkflow:
        return load_workflow_text(text, self.registry, self.templates, file)

    async def register(self, workflow: CompiledWorkflow) -> WorkflowVersion:
        """Store the definition as a template version (a new version only if it changed)."""
        return await self._catalog.register(workflow)

    async def push(self, workflow: CompiledWorkflow) -> tuple[WorkflowVersion, bool]:
        """Register the definition and make it the live version of its name (its triggers
        fire from now on). Returns the version and whether anything changed."""
        return await self._catalog.push(workflow)

    async def find_workflow(self, name: str, *, allow_file: bool = False) -> CompiledWorkflow:
        """What :meth:`locate` finds, compiled to run here (:meth:`workflow_for_version`)."""
        return await self._catalog.find_workflow(name, allow_file=allow_file)

    async def locate(
        self, name: str, *, allow_file: bool = False
    ) -> CompiledWorkflow | WorkflowVersion:
        """A pushed workflow by that name: its pushed (live) version, as
        :meth:`resolve_version` chooses for every start by name (before 2026-11-29 this
        took the newest stored version even when an older one was pushed again, so the
        CLI and the API could start different versions; until 2026-12 a deleted
        workflow's newest version, so it still started by name). With ``allow_file`` a
        definition file first, when ``name`` is one on this machine or ends in .yaml,
        .yml or .json.

        Decision: files only on request (the CLI's ``start FILE_OR_NAME``, a job file's
        items): a name a caller sent (HTTP, a form) is never read as a file of this
        machine, nor its existence looked at, by a path that forgot to say so."""
        return await self._catalog.locate(name, allow_file=allow_file)

    async def resolve_workflow(
        self, name: str, version: int | None = None
    ) -> tuple[CompiledWorkflow, WorkflowVersion]:
        """The version :meth:`resolve_version` chooses, compiled to run here."""
        return await self._catalog.resolve_workflow(name, version)

    async def resolve_child(
        self, name: str, version: int | None = None
    ) -> tuple[CompiledWorkflow, WorkflowVersion]:
        """The workflow a ``sys.sub_workflow`` step names, as a start by name finds it:
        its pushed version, or that stored version number. Until 2026-12 a name not
        pushed (deleted, or only ever run from a file) found its newest stored version,
        which ``start`` refused (tour 25 M12): whatever someone last ran from a scratch
        file against the database ran as the child."""
        return await self._catalog.resolve_child(name, version)

    async def resolve_version(
        self,
        name: str,
        version: int | None = None,
        *,
        pushed_only: bool = False,
        for_step: bool = False,
    ) -> WorkflowVersion:
        """A stored workflow by name: that version number, else the pushed (live) version,
        else the newest stored one. With ``pushed_only`` (a start by name, without a
        version) not the newest: a workflow that is not pushed (deleted) is an
        :class:`UnpushedError`. Compile it with :meth:`workflow_for_version` to run it
        here, with :meth:`workflow_to_read` to start it for the workers, show or draw it.

        Decision: a deleted workflow's stored versions still start when named by number
        (they are kept as history, and a rerun may pin one); a start by name, a
        sub-workflow step's too (:meth:`resolve_child`), means "the workflow as pushed
        now". ``for_step``: the refusal says how a step names a version."""
        return await self._catalog.resolve_version(
            name, version, pushed_only=pushed_only, for_step=for_step
        )

    async def workflow_for_version(self, version_id: str) -> CompiledWorkflow:
        """A stored version compiled to run here: MissingStepTypesError when this process
        lacks the custom step types it uses (recorded, so claims skip it), another
        DefinitionError when it no longer compiles with them."""
        return await self._catalog.workflow_for_version(version_id)

    async def workflow_to_read(self, version_id: str) -> CompiledWorkflow:
        """A stored version compiled for what only starts, shows or draws it (the workers
        run it, with their plugins): custom types this process has not loaded get
        stand-ins that never run (``CompiledWorkflow.runnable`` is False), kept apart
        from the workflows it runs. Where every type is here, it is the compile that runs."""
        return await self._catalog.workflow_to_read(version_id)

    async def workflow_version(self, version_id: str) -> WorkflowVersion:
        """A stored version, read once per engine (versions never change)."""
        return await self._catalog.workflow_version(version_id)

    async def live_workflows(
        self, triggers: str
    ) -> list[tuple[WorkflowVersion, datetime, CompiledWorkflow]]:
        """Every pushed, enabled workflow compiled, with when it was pushed, for its
        triggers, which only start executions: a workflow whose plugins this process
        lacks is compiled with stand-ins (the workers that have them run it). One that
        cannot be compiled even so is logged and left out, so its ``triggers`` (named in
        the log) are skipped while the others still fire. Only the versions this engine
        has not seen yet are read (webhook routing asks this on every request)."""
        return await self._catalog.live_workflows(triggers)

    # -- executions ---------------------------------------------------------------------------

    async def start(
        self,
        workflow: CompiledWorkflow | str | os.PathLike[str],
        input: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        created_by: str = "python",
        trigger: Mapping[str, Any] | None = None,
        hold: bool = False,
        lineage: Lineage | None = None,
    ) -> str:
        """Create an execution (``NotStarted``) and return its id; :meth:`drive` runs it.

        With ``hold`` the execution is created already leased to this engine, so no
        worker can claim it between its creation and this process driving it. With a
        ``lineage.trigger_key`` that was used before, nothing new is created and the
        earlier execution's id returns (a schedule tick or an entity event starts once).
        """
        execution_id, _ = await self._starts.create(
            workflow,
            input,
            correlation_id=correlation_id,
            created_by=created_by,
            trigger=trigger,
            hold=hold,
            lineage=lineage,
        )
        return execution_id

    async def start_keyed(
        self,
        workflow: CompiledWorkflow | str | os.PathLike[str],
        input: Mapping[str, Any] | None,
        lineage: Lineage,
        *,
        created_by: str = "python",
        trigger: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """:meth:`start` under ``lineage.trigger_key``, also saying whether this call
        created the execution: False when the key was taken, by an earlier start or by
        one racing this one (the id is then that start's). Only the insert knows: a look
        for the key first cannot tell two concurrent starts of one key apart."""
        execution_id, row = await self._starts.create(
            workflow, input, correlation_id=None, created_by=created_by, trigger=trigger,
            lineage=lineage,
        )  # fmt: skip
        return execution_id, execution_id == row["id"]

    async def start_document(
        self,
        workflow: CompiledWorkflow | str | os.PathLike[str],
        input: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        created_by: str = "python",
        hold: bool = False,
    ) -> ExecutionDocument:
        """:meth:`start`, answered with the new execution's document as it was created:
        built from the row just written (every column, as the database holds it;
        tests/runtime/test_round_trips.py checks it), so a start costs no read back. No
        trigger key here, so the row written is always the execution's."""
        _, row = await self._starts.create(
            workflow, input, correlation_id=correlation_id, created_by=created_by, hold=hold
        )
        return cast(ExecutionDocument, execution_document(row, []))

    async def start_once(
        self,
        workflow: CompiledWorkflow | str | os.PathLike[str],
        input: Mapping[str, Any] | None,
        key: str,
        *,
        correlation_id: str | None = None,
        created_by: str = "python",
    ) -> ExecutionDocument:
        """:meth:`start_document` that starts ``workflow`` once per ``key`` (a client's
        idempotency key): a start with a key used before creates nothing and answers the
        execution that key started, as it is now; with another input or another
        ``correlation_id`` (one given against none is another) it is refused
        (ConflictError). A key is kept as long as its execution (a prune frees it)."""
        return await self._starts.once(workflow, input, key, correlation_id, created_by)

    @overload
    async def drive(
        self, execution_id: str, *, document: Literal[True] = True
    ) -> ExecutionDocument: ...
    @overload
    async def drive(
        self, execution_id: str, *, document: Literal[False]
    ) -> ExecutionStatusDocument: ...
    @overload
    async def drive(
        self, execution_id: str, *, document: bool
    ) -> ExecutionDocument | ExecutionStatusDocument: ...
    async def drive(
        self, execution_id: str, *, document: bool = True
    ) -> ExecutionDocument | ExecutionStatusDocument:
        """Run an execution to its end from wherever the database says it is.

        Returns the execution document, or only ``{"id", "runtimeStatus"}`` when
        ``document`` is false (reading every step back is not free for big runs).
        """
        done = await self._drives.drive(execution_id, document)
        return cast(ExecutionDocument | ExecutionStatusDocument, done)

    def take_up(
        self, execution_id: str, epoch: int, work: Callable[[], Coroutine[Any, Any, None]]
    ) -> asyncio.Task[None] | None:
        """A worker on this engine claimed ``execution_id`` (lease ``epoch``): start
        ``work`` (its run, which calls :meth:`run_owned`) as this engine's run of it, at
        once, so a drive or settle here from now on joins it. Call it in the turn of the
        loop the claim returned in. Tour 23 F2: the run was registered only by
        ``run_owned``, after the worker's first await; a settle in that window found
        nothing running, took the lease from under the worker (the same owner may take
        its own), and the worker's run failed as "no longer owned by this process".

        None when a run here (a drive) has it already: that one takes the lease itself,
        and the claim is let go once it ends (a no-op when it took the lease, else the
        execution is claimable again)."""
        self._check_open()
        return self._runs.take_up(execution_id, epoch, work)

    async def run_owned(
        self,
        execution_id: str,
        *,
        park_after: float | None = None,
        drain: asyncio.Event | None = None,
        group_commits: bool = False,
        row: Row | None = None,
        on_release: Callable[[], None] | None = None,
        workflow: CompiledWorkflow | None = None,
    ) -> tuple[ExecutionStatus, datetime | None]:
        """Run an execution whose lease this process holds (the epoch is on its row).

        Returns its status and, when it was parked on a distant timer, the time it is
        due again. Setting ``drain`` makes it finish what is running and return.
        ``row``: the execution's row as the lease left it, when the caller has it (saves
        reading it again). A terminal status means the lease is released already: the
        round that ended the execution cleared it, after calling ``on_release`` (the
        caller stops renewing it there). ``workflow``: the one to run it with, when not
        its stored version compiled by this engine (``apply_cancel``).
        """
        return await self._drives.run_owned(
            execution_id,
            park_after=park_after,
            drain=drain,
            group_commits=group_commits,
            row=row,
            on_release=on_release,
            workflow=workflow,
        )

    # -- control from outside (SPEC §5: executions input|cancel|retry|rerun) -----------------

    async def submit_input(
        self, execution_id: str, step: str, data: Any, *, submitted_by: str = "python"
    ) -> str:
        """Hand a waiting ``sys.wait_for_input`` step its data (checked against its schema;
        InputError when refused, and the step keeps waiting), or a custom step parked by
        ``Suspend(until=None)`` (any JSON: its resume reads it as ``state["input"]``).
        ``step`` is a step id, or a step execution id when the step waits in several loop
        iterations. What JSON cannot hold (NaN) is InvalidInputError naming its place."""
        known_execution_id(execution_id)
        # Its write pokes a run of it here (Store.hear_signals).
        return await control.submit_input(self, execution_id, step, data, submitted_by)

    async def cancel(
        self, execution_id: str, *, by: str = "python", reason: str = "cancelled on request"
    ) -> None:
        """Ask the execution to cancel: its running steps are cancelled, children too."""
        known_execution_id(execution_id)
        await control.request_cancel(self, execution_id, by, reason)  # pokes a run here

    async def retry(self, execution_id: str, *, by: str = "python") -> list[str]:
        """Re-run the failed steps of a failed execution in place (attempt + 1); the ids
        of the steps that will run again. A job run's execution: retry it with
        :meth:`JobRuns.retry_execution` (as the application layer does), which opens the
        job run again so it goes on once the execution completes."""
        known_execution_id(execution_id)
        retried = await control.retry(self, execution_id, by)
        # Observers see the retry as a start (metrics: it ends again, as a first run does).
        if self.observers:
            self.observers.committed(execution_id, [retried.event], ExecutionInfo(retried.workflow))
        return retried.steps

    async def rerun(
        self,
        execution_id: str,
        from_step: str,
        *,
        version: Literal["pinned", "latest"] = "pinned",
        by: str = "python",
    ) -> str:
        """A new execution reusing the outputs of the steps before ``from_step``."""
        known_execution_id(execution_id)
        return await control.rerun(self, execution_id, from_step, version, by)

    async def pending_inputs(self, execution_id: str) -> list[PendingInput]:
        """Steps waiting for a person, in this execution and its children."""
        known_execution_id(execution_id)
        return cast(list[PendingInput], await control.pending_inputs(self, execution_id))

    async def settle(self, execution_id: str, *, wait: float = 30.0) -> ExecutionDocument:
        """Run the execution here until it ends or waits for people. When another process
        holds it, take it over as soon as that holder is known to be gone (its pid has
        ended on this host, or its lease lapsed), as ``flowledger run`` and the workers
        do; while the holder lives, watch it for up to ``wait`` seconds (it acts on what
        was sent itself), then answer the execution as it is. Parents it wakes on its way
        (a child that ended) are settled too. Returns the execution document."""
        doc = cast(ExecutionDocument, await self._drives.carry_on(execution_id, wait))
        parent_id = doc.get("parentWorkflowExecutionId")
        if parent_id and ExecutionStatus(doc["runtimeStatus"]).terminal:
            parent = await self._row(parent_id)
            if not ExecutionStatus(parent["runtime_status"]).terminal:
                await self.settle(parent_id, wait=wait)
        return doc

    async def apply_cancel(self, execution_id: str, *, wait: float = 30.0) -> ExecutionDocument:
        """Apply the cancel sent to an execution whose custom step types this process
        has not loaded: its workflow is compiled with stand-ins (StepRegistry.standing_in),
        which never run, since a cancel is taken before anything is launched. Without a
        pending cancel nothing is done. A holder elsewhere is taken over or watched as
        :meth:`settle` does. Returns the execution document."""
        known_execution_id(execution_id)
        pending = await self.store.pending_signals(execution_id)
        if not any(signal["kind"] == "cancel" for signal in pending):
            return await self.get_execution(execution_id)
        row = await self._row(execution_id)
        version = await self.workflow_version(row["workflow_version_id"])
        workflow = with_stand_ins(version_source(version), self.registry, self.templates)
        return cast(ExecutionDocument, await self._drives.carry_on(execution_id, wait, workflow))

    async def run(
        self,
        workflow: CompiledWorkflow | str | os.PathLike[str],
        input: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        created_by: str = "python",
    ) -> ExecutionDocument:
        """Start an execution and run it to the end; return its document (SPEC §4)."""
        execution_id, row = await self._starts.create(
            workflow, input, correlation_id=correlation_id, created_by=created_by, hold=True
        )
        # Created leased to us: drive it without taking the lease or reading the row again.
        held = row if row["id"] == execution_id else None
        return cast(ExecutionDocument, await self._drives.drive(execution_id, True, held))

    async def _row(self, execution_id: str) -> Row:
        return await execution_row(self.store, execution_id)

    async def get_execution(self, execution_id: str) -> ExecutionDocument:
        known_execution_id(execution_id)
        found = await self.store.read_execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        return await self.document(*found)

    async def document(self, row: Row, steps: list[Row]) -> ExecutionDocument:
        """The execution's document from its rows; ``pendingInputs`` also lists what its
        descendants wait for when it awaits input through them (a parent waiting on a
        child that asks a person), each entry naming its own ``executionId``."""
        self._check_open()
        doc = execution_document(row, steps)
        if waits_on_children(row, steps):
            doc["pendingInputs"] = await control.pending_inputs(self, row["id"])
        elif doc.get("pendingInputs"):  # answered, not yet applied: nobody to ask
            doc["pendingInputs"] = await control.unanswered(self, row["id"], doc["pendingInputs"])
        return cast(ExecutionDocument, doc)

    async def list_executions(self, query: ExecutionQuery | None = None) -> list[ExecutionDocument]:
        rows = await self.store.list_executions(query or ExecutionQuery())
        return [cast(ExecutionDocument, execution_document(r)) for r in rows]

    async def events(
        self, execution_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[EventDocument]:
        await self._row(execution_id)
        rows = await self.store.get_events(execution_id, after_seq, limit)
        return [cast(EventDocument, event_document(r)) for r in rows]
