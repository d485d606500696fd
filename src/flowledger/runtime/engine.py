"""The Engine: load definitions, start, run, resume and inspect executions.

An Engine is an explicit object (no process-wide state): it owns one store, one
HTTP client, one template engine and one step registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from flowledger.codec import Codec, loads, same_json
from flowledger.config import DEFAULT_LEASE, Settings
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.compiler import compile_document, load_workflow, load_workflow_text
from flowledger.definition.models import DEFINITION_FORMAT_VERSION
from flowledger.definition.source import SourceDocument, parse_document
from flowledger.definition.strictness import stored_definitions
from flowledger.definition.triggers import by_hand_trigger
from flowledger.entities.service import EntityService
from flowledger.errors import (
    ConflictError,
    DefinitionError,
    EngineClosedError,
    EngineLoopError,
    FlowledgerError,
    HeldElsewhereError,
    LeaseLostError,
    MissingStepTypesError,
    NotFoundError,
    NotPushedError,
    StorageError,
    did_you_mean,
)
from flowledger.jsonvalues import check_json_value
from flowledger.logs import log_extra
from flowledger.lru import LRU
from flowledger.runtime import control
from flowledger.runtime.creation import Lineage, execution_rows, plain_input, validate_input
from flowledger.runtime.documents import event_document, execution_document, waits_on_children
from flowledger.runtime.ids import known_execution_id
from flowledger.runtime.lazy_http import lazy_client
from flowledger.runtime.leases import LeaseKeeper
from flowledger.runtime.missing import missing_execution
from flowledger.runtime.observer import (
    EventCallback,
    EventCallbackObserver,
    ExecutionInfo,
    Observer,
    Observers,
)
from flowledger.runtime.orphans import abandoned, holder_words, owner_is_dead, process_owner
from flowledger.runtime.recovery import restore
from flowledger.runtime.runner import ExecutionRunner
from flowledger.runtime.services import Services
from flowledger.runtime.status import ExecutionStatus
from flowledger.runtime.tracing import execution_info
from flowledger.steps.registry import StepRegistry
from flowledger.storage import ExecutionQuery, Row, Store, WorkflowVersion, open_store
from flowledger.storage.base import MOST_SKIPPED
from flowledger.storage.lanes import Lane
from flowledger.templates import TemplateEngine, TemplateLimits
from flowledger.timeutil import Clock
from flowledger.traceparent import TRACEPARENT, own_traceparent
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

#: How long a finished parent waits for children it ran here to wind down.
CHILD_GRACE = 10.0
#: Workflow versions an engine keeps compiled (and stored versions it keeps read).
CACHED_VERSIONS = 500
#: How long ``close`` lets the steps an engine runs finish (and be recorded) before it
#: cancels them; either way it releases their executions.
CLOSE_GRACE = 10.0
#: How long ``close`` then waits for cancelled runs to give their executions back.
CLOSE_CANCEL_WAIT = 10.0
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


class _Running:
    """An execution this engine runs right now: the task running it (``drive``, or a
    worker's ``run_owned``), its runner once made, and an event set when it stops."""

    __slots__ = ("closed", "done", "finishing", "runner", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.done = asyncio.Event()
        self.runner: ExecutionRunner | None = None
        #: ``close`` cancelled it: its drive says so (EngineClosedError), not CancelledError.
        self.closed = False
        #: Its run has returned; what remains is the children's end and the release.
        self.finishing = False


async def _on_a_thread(body: Callable[[], T]) -> T:
    """``body`` on a thread of its own that ends with it: ``asyncio.to_thread`` made the
    loop's default executor, whose idle thread then stayed for the loop's life, in an
    application that embeds the engine and had never used that executor."""
    lane = Lane("flowledger-open", 1)
    try:
        return await lane.run(body)
    finally:
        await lane.close()


def _unacted(row: Row) -> bool:
    """Signals (input, a cancel) were sent to the execution that it has not taken yet."""
    return int(row.get("signals_sent") or 0) > int(row.get("signals_taken") or 0)


def _correlation(given: str | None) -> str:
    return f"correlation id {given!r}" if given is not None else "no correlation id"


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
        self.clock.bind(self._runners)
        # Versions are immutable once stored, so these caches can never go stale; bounded,
        # so a long-lived server holds the versions it runs, not every one it ever ran.
        self._workflows: LRU[str, CompiledWorkflow] = LRU(CACHED_VERSIONS)
        #: Versions compiled with stand-ins for types this process lacks: only ever started
        #: here, never run (workflow_for_version), so never in _workflows.
        self._standing_in: LRU[str, CompiledWorkflow] = LRU(CACHED_VERSIONS)
        self._versions: LRU[tuple[str, str], WorkflowVersion] = LRU(CACHED_VERSIONS)
        self._versions_by_id: LRU[str, WorkflowVersion] = LRU(CACHED_VERSIONS)
        #: Stored versions that cannot run here for want of custom step types (by version
        #: id, the error that says which), found by the runs that tried them: a worker's
        #: claims leave their executions to the workers that have the plugins
        #: (Store.claim_execution_rows' ``skip``). Kept for the
        #: engine's life, since versions never change and neither do the plugins a process
        #: loaded (a type registered on ``registry`` later is not looked for again); at most
        #: MOST_SKIPPED, the longest list a claim leaves out: past that, a worker parks
        #: them as it parks any run that fails (worker.worker).
        self.unrunnable: dict[str, MissingStepTypesError] = {}
        #: The pushed versions as of the last live_workflows: the live set, never evicted.
        self._live: dict[str, tuple[WorkflowVersion, CompiledWorkflow]] = {}
        #: Executions this engine drives right now (``drive``/``run``): with more than one,
        #: their rounds share transactions (group commit), as a worker's do.
        self._driving = 0
        #: The heartbeat of the executions ``drive`` runs right now, and who to tell (by
        #: execution id) when one's lease was lost.
        self._keeper: LeaseKeeper | None = None
        self._losers: dict[str, Callable[[], None]] = {}
        #: Told what this engine commits and claims (runtime.observer: cheap, never blocking).
        self.observers = Observers(self.owner, observers)
        #: Executions this engine runs right now, by id (``drive``, ``run``, ``settle`` and
        #: a worker's ``run_owned``): a second drive of one joins the first instead of
        #: taking the lease from it (the same owner may always take its own lease), and
        #: ``close`` gives them back.
        self._running: dict[str, _Running] = {}
        #: Hears the signals other processes send to what this runs (_watch_signals); its
        #: own it hears from its store (Store.hear_signals, set up by ``open``).
        self._signal_watch: asyncio.Task[None] | None = None
        self._closing = False
        #: The workers running on it (``worker_started``): their stop, and their end.
        self._workers: dict[object, tuple[Callable[[], None], asyncio.Event]] = {}
        #: Tasks of its own it must hold a reference to (Engine._background).
        self._tasks: set[asyncio.Task[None]] = set()
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
            store.hear_signals(self._poke_here)
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
                resolve_workflow=self.resolve_child,
                workflow_for_version=self.workflow_for_version,
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
        if self._store is not None and (self._running or self._workers):
            self._check_loop()
            self._closing = True
            workers = list(self._workers.values())
            try:
                for stop, _ in workers:
                    stop()
                await self._give_back(grace)
                await self._workers_ended([ended for _, ended in workers])
            finally:
                self._closing = False
        watch, self._signal_watch = self._signal_watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
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

    async def _give_back(self, grace: float) -> None:
        """Drain what this engine runs (see ``close``), then cancel what is left."""
        me = asyncio.current_task()
        running = [e for e in self._running.values() if e.task is not me]
        for entry in running:
            if entry.runner is not None:
                entry.runner.drain()  # one still taking its lease drains once it runs
        ends = [asyncio.ensure_future(entry.done.wait()) for entry in running]
        if not ends:
            return
        try:
            _, late = await asyncio.wait(ends, timeout=grace)
            if late:
                for entry in running:
                    if not entry.done.is_set() and entry.task is not None:
                        entry.closed = True
                        entry.task.cancel()
                await asyncio.wait(late, timeout=CLOSE_CANCEL_WAIT)
        finally:
            for end in ends:
                end.cancel()

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
        self._check_open()  # a cached answer too: a closed engine says so, always
        known = self._versions.get((workflow.name, workflow.checksum))
        if known is not None:
            return known
        document = json.dumps(workflow.document, sort_keys=True, ensure_ascii=False)
        version = await self.store.save_workflow_version(
            workflow.name, workflow.checksum, document, DEFINITION_FORMAT_VERSION, workflow.source
        )
        if workflow.runnable:  # a stand-in compile is never what this process runs
            self._workflows.put(version.id, workflow)
        self._versions.put((workflow.name, workflow.checksum), version)
        self._versions_by_id.put(version.id, version)
        return version

    async def push(self, workflow: CompiledWorkflow) -> tuple[WorkflowVersion, bool]:
        """Register the definition and make it the live version of its name (its triggers
        fire from now on). Returns the version and whether anything changed."""
        version = await self.register(workflow)
        changed = await self.store.activate_workflow(workflow.name, version.id)
        return version, changed

    async def find_workflow(self, name: str, *, allow_file: bool = False) -> CompiledWorkflow:
        """What :meth:`locate` finds, compiled to run here (:meth:`workflow_for_version`)."""
        found = await self.locate(name, allow_file=allow_file)
        if isinstance(found, CompiledWorkflow):
            return found
        return await self.workflow_for_version(found.id)

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
        if allow_file and (Path(name).is_file() or name.endswith((".yaml", ".yml", ".json"))):
            return self.load(name)
        if not allow_file:
            return await self.resolve_version(name, pushed_only=True)
        try:
            return await self.resolve_version(name, pushed_only=True)
        except NotPushedError:
            raise
        except NotFoundError:
            stored = {v.name for v in await self.store.list_workflow_versions()}
            raise NotFoundError(
                f"{name!r} is neither a definition file nor a pushed workflow "
                f"name{did_you_mean(name, stored)}"
            ) from None

    async def resolve_workflow(
        self, name: str, version: int | None = None
    ) -> tuple[CompiledWorkflow, WorkflowVersion]:
        """The version :meth:`resolve_version` chooses, compiled to run here."""
        chosen = await self.resolve_version(name, version)
        return await self.workflow_for_version(chosen.id), chosen

    async def resolve_child(
        self, name: str, version: int | None = None
    ) -> tuple[CompiledWorkflow, WorkflowVersion]:
        """The workflow a ``sys.sub_workflow`` step names, as a start by name finds it:
        its pushed version, or that stored version number. Until 2026-12 a name not
        pushed (deleted, or only ever run from a file) found its newest stored version,
        which ``start`` refused (tour 25 M12): whatever someone last ran from a scratch
        file against the database ran as the child."""
        chosen = await self.resolve_version(
            name, version, pushed_only=version is None, for_step=True
        )
        return await self.workflow_for_version(chosen.id), chosen

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
        # No name holds a NUL (PostgreSQL text cannot even be asked for one): not found.
        named = "\x00" not in name
        chosen = (
            await self.store.workflow_version_id(name, version, pushed_only=pushed_only)
            if named
            else None
        )
        if chosen is None:
            # Only to say what is missing: every version of the name.
            versions = await self.store.list_workflow_versions(name) if named else []
            if not versions:
                stored = {v.name for v in await self.store.list_workflow_versions()}
                raise NotFoundError(
                    f"there is no workflow named {name!r}{did_you_mean(name, stored)}; "
                    "push it first (flowledger workflows push FILE)"
                )
            known = ", ".join(str(v.version) for v in versions)
            if version is None:  # so only pushed_only finds none
                how = (
                    "version: N in the step's input"
                    if for_step
                    else f'`flowledger workflows trigger {name} --version N`, or "version": '
                    "N in the API's start"
                )
                raise NotPushedError(
                    f"workflow {name!r} is not pushed: it was deleted (or only ever run from "
                    f"a file), so it does not start by name; push it again, or start one of "
                    f"its stored versions by number ({known}): {how}"
                )
            raise NotFoundError(f"workflow {name!r} has no version {version} (it has {known})")
        return await self.workflow_version(chosen)

    async def workflow_for_version(self, version_id: str) -> CompiledWorkflow:
        """A stored version compiled to run here: MissingStepTypesError when this process
        lacks the custom step types it uses (recorded, so claims skip it), another
        DefinitionError when it no longer compiles with them."""
        self._check_open()
        cached = self._workflows.get(version_id)
        if cached is not None:
            return cached
        if (known := self.unrunnable.get(version_id)) is not None:
            raise MissingStepTypesError(known.problems, known.missing, known.workflow)
        live = self._live.get(version_id)
        if live is not None and live[1].runnable:  # one the cache let go
            return live[1]
        version = await self.workflow_version(version_id)
        source = parse_document(version.document, f"{version.name}@v{version.version}")
        try:
            with stored_definitions():  # rules newer than the push do not stop it
                workflow = compile_document(source, self.registry, self.templates)
        except DefinitionError as exc:
            raise self._why_not_here(version, source, exc) from None
        self._workflows.put(version_id, workflow)
        return workflow

    async def workflow_to_read(self, version_id: str) -> CompiledWorkflow:
        """A stored version compiled for what only starts, shows or draws it (the workers
        run it, with their plugins): custom types this process has not loaded get
        stand-ins that never run (``CompiledWorkflow.runnable`` is False), kept apart
        from the workflows it runs. Where every type is here, it is the compile that runs."""
        self._check_open()
        cached = self._workflows.get(version_id)
        if cached is not None:
            return cached
        live = self._live.get(version_id)
        if live is not None:
            return live[1]
        try:
            return await self.workflow_for_version(version_id)
        except MissingStepTypesError:  # its stand-in compile was made to tell (_why_not_here)
            standing = self._standing_in.get(version_id)
            if standing is not None:
                return standing
        version = await self.workflow_version(version_id)  # the bounded cache let it go
        source = parse_document(version.document, f"{version.name}@v{version.version}")
        with stored_definitions():
            workflow = compile_document(source, self.registry.standing_in(), self.templates)
        return self._standing_in.put(version_id, workflow)

    def _why_not_here(
        self, version: WorkflowVersion, source: SourceDocument, exc: DefinitionError
    ) -> DefinitionError:
        """The error of a stored version that does not compile here: MissingStepTypesError
        when stand-ins for the custom types this process lacks are all it needs (it is
        then recorded in ``unrunnable``), else ``exc`` itself (a plugin that changed its
        input model since the push, say)."""
        try:
            with stored_definitions():
                standing = compile_document(source, self.registry.standing_in(), self.templates)
        except DefinitionError:
            return exc
        self._standing_in.put(version.id, standing)
        missing = sorted(
            {s.step_type.name for s in standing.steps.values() if s.step_type.stands_in}
        )
        error = MissingStepTypesError(exc.problems, missing, f"{version.name} v{version.version}")
        if len(self.unrunnable) < MOST_SKIPPED:
            self.unrunnable[version.id] = error
        return error

    async def workflow_version(self, version_id: str) -> WorkflowVersion:
        """A stored version, read once per engine (versions never change)."""
        self._check_open()
        version = self._versions_by_id.get(version_id)
        if version is None:
            version = await self.store.get_workflow_version(version_id)
            if version is None:
                raise NotFoundError(f"workflow version {version_id} does not exist")
            self._versions_by_id.put(version_id, version)
        return version

    async def live_workflows(
        self, triggers: str
    ) -> list[tuple[WorkflowVersion, datetime, CompiledWorkflow]]:
        """Every pushed, enabled workflow compiled, with when it was pushed, for its
        triggers, which only start executions: a workflow whose plugins this process
        lacks is compiled with stand-ins (the workers that have them run it). One that
        cannot be compiled even so is logged and left out, so its ``triggers`` (named in
        the log) are skipped while the others still fire. Only the versions this engine
        has not seen yet are read (webhook routing asks this on every request)."""
        # The live set is held apart from the bounded caches, replaced by each call: more
        # live workflows than those hold would otherwise evict each before its next use
        # and be compiled again on every request.
        held, live = self._live, {}
        found = []
        for version_id, pushed_at in await self.store.active_workflow_ids():
            known = held.get(version_id)
            if known is not None:
                live[version_id] = known
                found.append((known[0], pushed_at, known[1]))
                continue
            try:
                version = await self.workflow_version(version_id)
            except NotFoundError:
                continue  # workflows.version_id names a stored version; gone, nothing to route
            try:
                workflow = await self.workflow_to_read(version_id)
            except FlowledgerError as exc:
                log.error(
                    "workflow %s v%d cannot be compiled here, its %s are skipped: %s",
                    version.name,
                    version.version,
                    triggers,
                    exc,
                    extra=log_extra("live_workflows"),
                )
                continue
            live[version_id] = (version, workflow)
            found.append((version, pushed_at, workflow))
        self._live = live
        return found

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
        execution_id, _ = await self._create(
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
        execution_id, row = await self._create(
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
        _, row = await self._create(
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
        check_json_value(key, "key")  # named as the caller named it, not as trigger_key
        compiled = workflow if isinstance(workflow, CompiledWorkflow) else self.load(workflow)
        lineage = Lineage(trigger_key=f"start:{compiled.name}:{key}")
        execution_id, row = await self._create(
            compiled, input, correlation_id=correlation_id, created_by=created_by, lineage=lineage
        )
        if execution_id == row["id"]:
            return cast(ExecutionDocument, execution_document(row, []))
        earlier = await self.get_execution(execution_id)
        if not same_json(
            earlier["trigger"].get("arguments"), loads(row["trigger"]).get("arguments")
        ):
            raise ConflictError(
                f"the idempotency key {key!r} started execution {execution_id} with another "
                "input; use a new key for a new start"
            )
        # Answering the first execution under another correlation id told the client it
        # was filed under the one it sent (tour 22C F3). An execution started without one
        # holds its own id.
        earlier_given = earlier["correlationId"]
        if earlier_given == execution_id:
            earlier_given = None
        if correlation_id != earlier_given:
            raise ConflictError(
                f"the idempotency key {key!r} started execution {execution_id} with "
                f"{_correlation(earlier_given)}, not {_correlation(correlation_id)}; "
                "use a new key for a new start"
            )
        return earlier

    async def _create(
        self,
        workflow: CompiledWorkflow | str | os.PathLike[str],
        input: Mapping[str, Any] | None,
        *,
        correlation_id: str | None,
        created_by: str,
        trigger: Mapping[str, Any] | None = None,
        hold: bool = False,
        lineage: Lineage | None = None,
    ) -> tuple[str, Row]:
        """``start``, also returning the row it wrote (its id differs from the returned
        one when the trigger key was taken: then that row was not written)."""
        # Refused where they enter, naming the argument: a lone surrogate reached the
        # database, which refused the start as a StorageError (tour 23).
        check_json_value(correlation_id, "correlation_id")
        check_json_value(created_by, "created_by")
        if lineage is not None:
            check_json_value(lineage.trigger_key, "trigger_key")
        compiled = workflow if isinstance(workflow, CompiledWorkflow) else self.load(workflow)
        arguments = validate_input(compiled, plain_input(input))
        if hold:
            # This process runs it: when it cannot read the secrets the workflow names (an
            # unreadable FLOWLEDGER_SECRETS_FILE: ConfigError), refuse before storing
            # anything, rather than release a queued execution that some worker then runs
            # with its own secrets and fails with another reason.
            Codec.for_names(compiled.secret_names)
        version = await self.register(compiled)
        row, created = execution_rows(
            compiled,
            version,
            trigger=dict(trigger)
            if trigger
            else by_hand_trigger(compiled.triggers, "function", arguments, self.clock.now()),
            now=self.clock.now(),
            created_by=created_by,
            correlation_id=correlation_id,
            lineage=lineage or Lineage(),
            holder=(self.owner, self.lease) if hold else None,
        )
        return await self.store.create_execution(row, [created]), row

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
        done = await self._drive(execution_id, document)
        return cast(ExecutionDocument | ExecutionStatusDocument, done)

    async def _drive(
        self,
        execution_id: str,
        document: bool,
        held: Row | None = None,
        workflow: CompiledWorkflow | None = None,
        steal_from: str | None = None,
    ) -> Mapping[str, Any]:
        """``drive``; ``held``: the row ``_create`` just wrote, leased to this engine;
        ``steal_from``: a holder known to be dead, whose lease is taken at once.

        A drive of an execution this engine runs already (another ``drive``, ``settle``
        or ``run``, a worker's run on this engine) joins it: it waits for that run to
        stop, then answers the execution as it left it, or carries it on from there when
        that run stopped short of an end or a wait for people (cancelled, closed, parked
        on a timer by a worker). Before 2026-12 it took the lease from the first (the
        same owner may always take its own): the step running was run twice and its
        first attempt recorded as cut by a process that stopped, which was untrue.
        """
        self._check_loop()
        known_execution_id(execution_id)
        joined = False
        while (ahead := self._running.get(execution_id)) is not None:
            await ahead.done.wait()
            joined = True
        if self._closing:
            raise self._closed_error(execution_id)
        entry = _Running(asyncio.current_task())
        self._running[execution_id] = entry
        try:
            return await self._drive_here(
                execution_id, document, held, workflow, steal_from, entry, joined
            )
        finally:
            if self._running.get(execution_id) is entry:
                del self._running[execution_id]
            entry.done.set()

    def _runners(self) -> list[ExecutionRunner | None]:
        """What this engine runs now, one per execution (None: its run is starting)."""
        return [entry.runner for entry in self._running.values() if not entry.finishing]

    def _closed_error(self, execution_id: str) -> EngineClosedError:
        return EngineClosedError(
            f"the engine was closed while it ran execution {execution_id}: the steps that "
            "ran are recorded and its lease is released, so the next process that runs it "
            "(a worker, a settle) carries it on"
        )

    async def _holder(self, execution_id: str) -> str:
        """Who holds the execution now, in words (for an error message)."""
        row = await self.store.get_execution(execution_id)
        return holder_words(row["lease_owner"] if row else None, self.owner)

    async def _drive_here(
        self,
        execution_id: str,
        document: bool,
        held: Row | None,
        workflow: CompiledWorkflow | None,
        steal_from: str | None,
        entry: _Running,
        joined: bool,
    ) -> Mapping[str, Any]:
        """``_drive`` once nothing else here runs the execution.

        Store round trips per run (each a thread hop, see storage.lanes): the lease is
        taken and the row read back in one write (``acquire_lease_row``), or not at all
        for a ``held`` row (created leased: epoch 1 is ours, and execution_rows writes
        every column, so that row is what the database holds; tests/runtime check it);
        an execution that ends gives its lease up in its last round (Journal.release_lease),
        and one left waiting (for people, or parked) in a release that hands back the final
        row (``release_lease_row``), so nothing is read again but the document (one
        ``read_execution``). The take and the release join those of the other executions
        driven meanwhile (storage.leasegroup).
        """
        row = held if held is not None else await self._row(execution_id)
        final_status = str(row["runtime_status"])
        waits = final_status == ExecutionStatus.AWAITING_USER_INPUT and not _unacted(row)
        if not ExecutionStatus(final_status).terminal and not (joined and waits):
            owned = held
            if owned is None:
                owned = await self.store.acquire_lease_row(
                    execution_id, self.owner, self.lease, steal_from=steal_from
                )
            if owned is None:
                holder = holder_words(row["lease_owner"], self.owner)
                raise HeldElsewhereError(
                    f"execution {execution_id} is being run by {holder} right now"
                )
            if ExecutionStatus(owned["runtime_status"]).terminal:
                # Another process ended it between our read and our take: nothing to run.
                await self.store.release_lease_row(execution_id, int(owned["lease_epoch"]), None)
                if not document:
                    return {"id": execution_id, "runtimeStatus": owned["runtime_status"]}
                return await self.get_execution(execution_id)
            epoch = int(owned["lease_epoch"])
            self.observers.claimed(execution_id, epoch, from_owner=row["lease_owner"])
            current = asyncio.current_task()
            lost_lease = False

            def lost() -> None:
                # Another process owns it now; our writes would be refused anyway.
                nonlocal lost_lease
                lost_lease = True
                if current is not None:
                    current.cancel()

            keeper = self._hold(execution_id, epoch, lost)
            parked_until = None
            released: Row | None = None
            ended = False
            self._driving += 1
            try:
                status, parked_until = await self.run_owned(
                    execution_id,
                    row=owned,
                    on_release=lambda: keeper.drop(execution_id, epoch),
                    workflow=workflow,
                )
                # Ended: its last round released the lease (Journal.release_lease).
                final_status, ended = str(status), status.terminal
            except asyncio.CancelledError:
                # Stopped midway (Ctrl-C): claimable at once, an AwaitingUserInput row too
                # (claimed only once its wake_at has come: see ExecutionRunner._take_up_waiting).
                parked_until = self.clock.lease_now()
                if entry.closed and current is not None:  # close() stopped it, not our caller
                    current.uncancel()
                    raise self._closed_error(execution_id) from None
                if not lost_lease:
                    raise
                raise LeaseLostError(
                    f"execution {execution_id} was taken over by "
                    f"{await self._holder(execution_id)} after this Engine failed to renew "
                    "its lease in time; it goes on there"
                ) from None
            except LeaseLostError:
                parked_until = self.clock.lease_now()  # as below (the release is refused anyway)
                raise LeaseLostError(
                    f"execution {execution_id} was taken over by "
                    f"{await self._holder(execution_id)} while this Engine ran it (its lease "
                    "lapsed); this Engine's last changes were not written, and it goes on "
                    "there"
                ) from None
            except Exception:
                parked_until = self.clock.lease_now()  # as above
                raise
            finally:
                self._driving -= 1
                await self._let_go(keeper, execution_id, epoch, lost)
                if not ended:
                    # Waiting for people: claimable when a timer is due or input arrives.
                    released = await self.store.release_lease_row(execution_id, epoch, parked_until)
            if not ended and self._closing:  # drained by close(): given back, not done
                raise self._closed_error(execution_id)
            if not ended:  # the row as the release left it (input may have come meanwhile)
                final = released if released is not None else await self._row(execution_id)
                final_status = str(final["runtime_status"])
        if not document:
            return {"id": execution_id, "runtimeStatus": final_status}
        # The row and its steps in one read: on SQLite a point read on the loop (no thread
        # hop; storage.lanes), which many executions driven together each pay at their end.
        found = await self.store.read_execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        return await self.document(*found)

    def _hold(self, execution_id: str, epoch: int, lost: Callable[[], None]) -> LeaseKeeper:
        """Keep the lease of an execution ``drive`` runs alive: one heartbeat for all the
        executions this engine drives at once (one renewal transaction for all, as a
        worker's), started by the first and stopped after the last."""
        keeper = self._keeper
        if keeper is None:
            keeper = LeaseKeeper(self.store, self.owner, self.lease, self.clock, self._lost)
            self._keeper = keeper
            keeper.start()
        keeper.hold(execution_id, epoch)
        self._losers[execution_id] = lost
        return keeper

    async def _let_go(
        self, keeper: LeaseKeeper, execution_id: str, epoch: int, lost: Callable[[], None]
    ) -> None:
        # Only our own hold: a second drive of the same execution here took a newer epoch.
        keeper.drop(execution_id, epoch)
        if self._losers.get(execution_id) is lost:
            del self._losers[execution_id]
        if not keeper.held and self._keeper is keeper:
            self._keeper = None
            await keeper.stop()

    def _lost(self, execution_id: str) -> None:
        lost = self._losers.pop(execution_id, None)
        if lost is not None:
            lost()

    def _crowded(self) -> bool:
        return self._driving > 1

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
        ahead = self._running.get(execution_id)
        if ahead is not None:
            self._background(self._release_after(ahead, execution_id, epoch))
            return None
        entry = _Running(None)
        task = asyncio.get_running_loop().create_task(work())
        entry.task = task
        self._running[execution_id] = entry

        def ended(_: object) -> None:
            if self._running.get(execution_id) is entry:
                del self._running[execution_id]
            entry.done.set()

        task.add_done_callback(ended)
        return task

    async def _release_after(self, ahead: _Running, execution_id: str, epoch: int) -> None:
        await ahead.done.wait()
        with contextlib.suppress(FlowledgerError):  # closed meanwhile: the lease lapses
            await self.store.release_lease(execution_id, epoch, self.clock.lease_now())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # held: the loop keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

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
        # A worker's run (registered by take_up), or a drive's: a drive of it here joins.
        entry = self._running.get(execution_id)
        mine = None
        if entry is None:
            mine = entry = _Running(asyncio.current_task())
            self._running[execution_id] = entry
        try:
            return await self._run_owned(
                execution_id, entry, park_after, drain, group_commits, row, on_release, workflow
            )
        finally:
            if mine is not None:
                if self._running.get(execution_id) is mine:
                    del self._running[execution_id]
                mine.done.set()

    async def _run_owned(
        self,
        execution_id: str,
        entry: _Running,
        park_after: float | None,
        drain: asyncio.Event | None,
        group_commits: bool,
        row: Row | None,
        on_release: Callable[[], None] | None,
        workflow: CompiledWorkflow | None,
    ) -> tuple[ExecutionStatus, datetime | None]:
        if row is None:
            row = await self._row(execution_id)
        assert self._services is not None
        if workflow is None:
            workflow = await self.workflow_for_version(row["workflow_version_id"])
        # The lease bumped the epoch; the row we read carries the new one. An execution
        # that ran before counts its events from them: its row's counter may lag.
        fresh = row["runtime_status"] == str(ExecutionStatus.NOT_STARTED)
        last_seq = None if fresh else await self.store.last_event_seq(execution_id)
        runner = ExecutionRunner(
            self._services, workflow, row, int(row["lease_epoch"]), last_seq=last_seq
        )
        if not fresh:
            restore(runner, await self.store.get_step_executions(execution_id))
        info = execution_info(workflow, row)
        runner.journal.sinks.append(lambda events: self._notify(execution_id, events, info))
        runner.journal.group_commits = group_commits
        runner.journal.on_release = on_release
        runner.journal.crowded = self._crowded
        entry.runner = runner  # close() drains it
        if self._signal_watch is None:
            self._watch_signals()
        if self._closing:
            runner.drain()
        inline: set[asyncio.Task[None]] = set()
        over = asyncio.Event()  # this run of it ended: its children's watches end too
        if park_after is None:  # run children here too, as `flowledger run` users expect
            runner.on_children = lambda ids: self._run_children(ids, runner, inline, over)
            waiting = [c for run in runner.children.runs.values() for c in run.children or []]
            if waiting:
                runner.on_children(waiting)
        runner.on_cancels = lambda ids: self._tell_cancelled(
            ids, inline if park_after is None else None
        )
        watcher = None
        if drain is not None:

            async def watch(event: asyncio.Event = drain) -> None:
                await event.wait()
                runner.drain()

            watcher = asyncio.create_task(watch())
        # Tracing on: its children and outgoing requests join the execution's span.
        joined = own_traceparent(execution_id, info.traceparent) if self.settings.otel else None
        token = TRACEPARENT.set(joined) if joined is not None else None
        returned = False
        try:
            status = await runner.run(park_after)
            returned = True
        finally:
            if token is not None:
                TRACEPARENT.reset(token)
            if watcher is not None:
                watcher.cancel()
            over.set()  # what watches a child held elsewhere stops now, not after the grace
            entry.finishing = True  # waits for no timer of its own (testing.VirtualClock)
            # Left waiting for people, a `run` lets the children it runs reach theirs too (a
            # delay beside a child's question ran out CHILD_GRACE, then was cut).
            waits = returned and park_after is None and not runner.draining
            if inline and waits and status == ExecutionStatus.AWAITING_USER_INPUT:
                await asyncio.wait(inline)
            if inline:  # children told to cancel end within a poll; others already ended
                _, late = await asyncio.wait(inline, timeout=CHILD_GRACE)
                for task in late:  # still waiting on another process: workers finish those
                    task.cancel()
            runner.on_children = runner.on_cancels = None  # they hold the runner: a cycle
            entry.runner = None
        return status, runner.parked_until

    def _run_children(
        self,
        ids: list[str],
        parent: ExecutionRunner,
        tasks: set[asyncio.Task[None]],
        over: asyncio.Event,
    ) -> None:
        for child_id in ids:
            task = asyncio.create_task(self._run_child(child_id, parent, over))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def _tell_cancelled(self, ids: list[str], tasks: set[asyncio.Task[None]] | None) -> list[str]:
        """Children were just sent a cancel: one run here looked at it as the commit that
        sent it came back (Store.hear_signals), and under a `run` (``tasks``: its
        children's runs) one parked (waiting for a person or a timer) is run here to apply
        it. Returns the others: their holders see it as told (PostgreSQL) or at their next
        look, a worker claims a parked one."""
        elsewhere = []
        for child_id in ids:
            entry = self._running.get(child_id)
            if entry is not None and entry.runner is not None:
                continue
            if entry is None and tasks is not None:
                task = asyncio.create_task(self._apply_cancel_here(child_id))
                tasks.add(task)  # the parent's run waits for it before it returns
                task.add_done_callback(tasks.discard)
            else:
                elsewhere.append(child_id)
        return elsewhere

    async def _apply_cancel_here(self, child_id: str) -> None:
        try:
            await self._drive(child_id, False)
        except (StorageError, MissingStepTypesError) as exc:  # held elsewhere, closed, no plugin
            log.info(
                "child execution %s was sent a cancel it is left to apply: %s",
                child_id,
                exc,
                extra=log_extra("run_child", child_id),
            )
        except Exception:
            log.exception(
                "child execution %s stopped with an error while applying its cancel",
                child_id,
                extra=log_extra("run_child", child_id),
            )

    async def _run_child(self, child_id: str, parent: ExecutionRunner, over: asyncio.Event) -> None:
        """Drive a child of ``parent`` here, or, while another process holds it, watch it
        until that holder is gone (then take it over) or ``over``: the parent's run here
        ended, and nothing here waits for the child any more."""
        try:
            steal_from = None
            # A child taken from a dead holder is driven even once its parent ended (the
            # parent's cancel reached it): before 2026-12 the take came first and the loop
            # then stopped, leaving the child leased to this engine and run by nobody.
            while steal_from is not None or not (parent.status.terminal or over.is_set()):
                try:
                    await self._drive(child_id, False, steal_from=steal_from)
                    return
                except EngineClosedError:  # given back with its parent: nothing to wait for
                    return
                except (StorageError, LeaseLostError):
                    # Another process holds it: its end reaches the parent as a signal. If
                    # that process died (a killed `run` on this host: its pid is gone),
                    # this one takes the child over now; elsewhere, once the lease lapses.
                    row = await self.store.get_execution(child_id)
                    if row is None or ExecutionStatus(row["runtime_status"]).terminal:
                        return
                    holder = row["lease_owner"]
                    if holder != steal_from and owner_is_dead(holder):
                        steal_from = holder
                        continue
                    steal_from = None
                    # Its holder lives (or seems to: a killed pid not yet reaped): look
                    # again later, or stop once the parent's run ends. Before, that end
                    # waited CHILD_GRACE (10 s) for this sleep: a cancel of the parent from
                    # the command line took 11 s, its children taken over only after.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(over.wait(), self.lease.total_seconds() / 2)
        except MissingStepTypesError as exc:
            # Its plugin is not loaded here (a cancel from the command line without it):
            # no traceback, which said nothing more; a cancel it was sent is applied by
            # the command's pass over the descendants (app.executions), else a worker runs it.
            # INFO: a cancel's command line printed it as a warning that the child was
            # left, over the children it then cancelled (tour 21).
            log.info(
                "child execution %s is not run here, its step types not loaded (%s): a "
                "cancel sent to it still applies; the rest waits for a process that has them",
                child_id,
                exc.problems[0].message if exc.problems else exc,
                extra=log_extra("run_child", child_id),
            )
            parent.drain()
        except Exception:
            log.exception(
                "child execution %s stopped with an error",
                child_id,
                extra=log_extra("run_child", child_id),
            )
            # Nothing here runs that child now, so the parent would wait for it for ever
            # (`run` hung): it finishes what is running and returns, left for a worker.
            parent.drain()
        finally:
            parent.poke()

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

    def _watch_signals(self) -> None:
        """Once this engine runs an execution: a signal another process sends to one it
        runs makes it look at once, not at its next poll (up to
        runtime.inbox.POLL_INTERVAL later). PostgreSQL only (Store.watch_signals)."""
        watching = self.store.watch_signals(self._poke_here)
        self._signal_watch = asyncio.get_running_loop().create_task(watching)

    def _poke_here(self, execution_id: str) -> None:
        """A signal was just sent to ``execution_id`` (by this engine's store, or by another
        process: Store.watch_signals): if this engine runs it (``serve``'s worker, a
        ``drive``), it looks now rather than at its next poll (up to
        runtime.inbox.POLL_INTERVAL later). Tour 22C: a cancel sent in a run's last second
        was often not seen before the run completed."""
        entry = self._running.get(execution_id)
        if entry is not None and entry.runner is not None:
            entry.runner.poke()

    async def retry(self, execution_id: str, *, by: str = "python") -> list[str]:
        """Re-run the failed steps of a failed execution in place (attempt + 1); the ids
        of the steps that will run again. A job run's execution: retry it with
        :meth:`JobRuns.retry_execution` (as the application layer does), which opens the
        job run again so it goes on once the execution completes."""
        known_execution_id(execution_id)
        retried = await control.retry(self, execution_id, by)
        # Observers see the retry as a start (metrics: it ends again, as a first run does).
        self._notify(execution_id, lambda: [retried.event], ExecutionInfo(retried.workflow))
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
        doc = cast(ExecutionDocument, await self._carry_on_here(execution_id, wait))
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
        source = parse_document(version.document, f"{version.name}@v{version.version}")
        with stored_definitions():
            workflow = compile_document(source, self.registry.standing_in(), self.templates)
        return cast(ExecutionDocument, await self._carry_on_here(execution_id, wait, workflow))

    async def _carry_on_here(
        self, execution_id: str, wait: float, workflow: CompiledWorkflow | None = None
    ) -> Mapping[str, Any]:
        """Drive the execution; while another process holds it, watch it: until it has
        ended or waits for people with nothing left to act on (an input or a cancel just
        sent is not yet taken while it still shows AwaitingUserInput), or ``wait``
        seconds have passed; or, once its holder is gone (a dead pid on this host, a
        lapsed or released lease), take it over and drive it here. Before 2026-12 a dead
        holder was watched for the whole wait: a cancel from the command line waited 30 s,
        then failed, the execution left InProgress until a worker came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        steal_from = None
        took_over = False
        while True:
            try:
                return await self._drive(
                    execution_id, True, workflow=workflow, steal_from=steal_from
                )
            except (HeldElsewhereError, LeaseLostError):  # another process runs it: watch
                pass
            if took_over:  # another process was quicker (a worker): not in a tight loop
                await asyncio.sleep(0.1)
            while True:
                row = await self._row(execution_id)
                status = ExecutionStatus(row["runtime_status"])
                if status.terminal or (
                    status == ExecutionStatus.AWAITING_USER_INPUT and not _unacted(row)
                ):
                    return await self.get_execution(execution_id)
                late = loop.time() >= deadline
                # Nobody runs it: take it over (once more after the time is up, at most).
                if abandoned(row, self.clock.lease_now()) and not (late and took_over):
                    holder = row["lease_owner"]
                    steal_from = holder if owner_is_dead(holder) else None
                    took_over = True
                    break
                if late:
                    return await self.get_execution(execution_id)
                await asyncio.sleep(0.1)

    def _notify(
        self, execution_id: str, rows: Callable[[], list[Row]], info: ExecutionInfo
    ) -> None:
        if self.observers:  # the round's event rows are made for observers only
            self.observers.committed(execution_id, rows(), info)

    async def run(
        self,
        workflow: CompiledWorkflow | str | os.PathLike[str],
        input: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        created_by: str = "python",
    ) -> ExecutionDocument:
        """Start an execution and run it to the end; return its document (SPEC §4)."""
        execution_id, row = await self._create(
            workflow, input, correlation_id=correlation_id, created_by=created_by, hold=True
        )
        # Created leased to us: drive it without taking the lease or reading the row again.
        held = row if row["id"] == execution_id else None
        return cast(ExecutionDocument, await self._drive(execution_id, True, held))

    async def _row(self, execution_id: str) -> Row:
        known_execution_id(execution_id)
        row = await self.store.get_execution(execution_id)
        if row is None:
            raise await missing_execution(self.store, execution_id)
        return row

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
