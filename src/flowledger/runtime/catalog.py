"""The workflow versions an engine knows: storing and pushing them, finding the one a
name means, and compiling each once, to run here or only to start, show or draw.

The Engine holds one :class:`Catalog` and answers its public lookups (``register``,
``locate``, ``resolve_version``, ``workflow_for_version`` ...) from it; their contracts
are in the Engine's docstrings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.compiler import compile_document, load_workflow
from flowledger.definition.models import DEFINITION_FORMAT_VERSION
from flowledger.definition.source import SourceDocument, parse_document
from flowledger.definition.strictness import stored_definitions
from flowledger.errors import (
    DefinitionError,
    FlowledgerError,
    MissingStepTypesError,
    NotFoundError,
    NotPushedError,
    did_you_mean,
)
from flowledger.logs import log_extra
from flowledger.lru import LRU
from flowledger.steps.registry import StepRegistry
from flowledger.storage import Store, WorkflowVersion
from flowledger.storage.base import MOST_SKIPPED
from flowledger.templates import TemplateEngine

#: Workflow versions an engine keeps compiled (and stored versions it keeps read).
CACHED_VERSIONS = 500
log = logging.getLogger(__name__)


def version_source(version: WorkflowVersion) -> SourceDocument:
    """A stored version's document, named as its errors name it (``name@vN``)."""
    return parse_document(version.document, f"{version.name}@v{version.version}")


def with_stand_ins(
    source: SourceDocument, registry: StepRegistry, templates: TemplateEngine
) -> CompiledWorkflow:
    """``source`` compiled with stand-ins for the custom types this process lacks
    (StepRegistry.standing_in): only ever started, shown or drawn here, never run."""
    with stored_definitions():
        return compile_document(source, registry.standing_in(), templates)


class Catalog:
    """An engine's workflow versions: ``store`` is the engine's (EngineClosedError when
    it is not open) and ``check_open`` says so before a cached answer."""

    def __init__(
        self,
        registry: StepRegistry,
        templates: TemplateEngine,
        store: Callable[[], Store],
        check_open: Callable[[], None],
    ) -> None:
        self._registry = registry
        self._templates = templates
        self._store = store
        self._check_open = check_open
        # Versions are immutable once stored, so these caches can never go stale; bounded,
        # so a long-lived server holds the versions it runs, not every one it ever ran.
        self.workflows: LRU[str, CompiledWorkflow] = LRU(CACHED_VERSIONS)
        #: Versions compiled with stand-ins for types this process lacks: only ever started
        #: here, never run (workflow_for_version), so never in workflows.
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
        self.live: dict[str, tuple[WorkflowVersion, CompiledWorkflow]] = {}

    async def register(self, workflow: CompiledWorkflow) -> WorkflowVersion:
        self._check_open()  # a cached answer too: a closed engine says so, always
        known = self._versions.get((workflow.name, workflow.checksum))
        if known is not None:
            return known
        document = json.dumps(workflow.document, sort_keys=True, ensure_ascii=False)
        version = await self._store().save_workflow_version(
            workflow.name, workflow.checksum, document, DEFINITION_FORMAT_VERSION, workflow.source
        )
        if workflow.runnable:  # a stand-in compile is never what this process runs
            self.workflows.put(version.id, workflow)
        self._versions.put((workflow.name, workflow.checksum), version)
        self._versions_by_id.put(version.id, version)
        return version

    async def push(self, workflow: CompiledWorkflow) -> tuple[WorkflowVersion, bool]:
        version = await self.register(workflow)
        changed = await self._store().activate_workflow(workflow.name, version.id)
        return version, changed

    async def find_workflow(self, name: str, *, allow_file: bool = False) -> CompiledWorkflow:
        found = await self.locate(name, allow_file=allow_file)
        if isinstance(found, CompiledWorkflow):
            return found
        return await self.workflow_for_version(found.id)

    async def locate(
        self, name: str, *, allow_file: bool = False
    ) -> CompiledWorkflow | WorkflowVersion:
        if allow_file and (Path(name).is_file() or name.endswith((".yaml", ".yml", ".json"))):
            return load_workflow(name, self._registry, self._templates)
        if not allow_file:
            return await self.resolve_version(name, pushed_only=True)
        try:
            return await self.resolve_version(name, pushed_only=True)
        except NotPushedError:
            raise
        except NotFoundError:
            stored = {v.name for v in await self._store().list_workflow_versions()}
            raise NotFoundError(
                f"{name!r} is neither a definition file nor a pushed workflow "
                f"name{did_you_mean(name, stored)}"
            ) from None

    async def resolve_workflow(
        self, name: str, version: int | None = None
    ) -> tuple[CompiledWorkflow, WorkflowVersion]:
        chosen = await self.resolve_version(name, version)
        return await self.workflow_for_version(chosen.id), chosen

    async def resolve_child(
        self, name: str, version: int | None = None
    ) -> tuple[CompiledWorkflow, WorkflowVersion]:
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
        # No name holds a NUL (PostgreSQL text cannot even be asked for one): not found.
        named = "\x00" not in name
        chosen = (
            await self._store().workflow_version_id(name, version, pushed_only=pushed_only)
            if named
            else None
        )
        if chosen is None:
            # Only to say what is missing: every version of the name.
            versions = await self._store().list_workflow_versions(name) if named else []
            if not versions:
                stored = {v.name for v in await self._store().list_workflow_versions()}
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
        self._check_open()
        cached = self.workflows.get(version_id)
        if cached is not None:
            return cached
        if (known := self.unrunnable.get(version_id)) is not None:
            raise MissingStepTypesError(known.problems, known.missing, known.workflow)
        live = self.live.get(version_id)
        if live is not None and live[1].runnable:  # one the cache let go
            return live[1]
        version = await self.workflow_version(version_id)
        source = version_source(version)
        try:
            with stored_definitions():  # rules newer than the push do not stop it
                workflow = compile_document(source, self._registry, self._templates)
        except DefinitionError as exc:
            raise self._why_not_here(version, source, exc) from None
        self.workflows.put(version_id, workflow)
        return workflow

    async def workflow_to_read(self, version_id: str) -> CompiledWorkflow:
        self._check_open()
        cached = self.workflows.get(version_id)
        if cached is not None:
            return cached
        live = self.live.get(version_id)
        if live is not None:
            return live[1]
        try:
            return await self.workflow_for_version(version_id)
        except MissingStepTypesError:  # its stand-in compile was made to tell (_why_not_here)
            standing = self._standing_in.get(version_id)
            if standing is not None:
                return standing
        version = await self.workflow_version(version_id)  # the bounded cache let it go
        workflow = with_stand_ins(version_source(version), self._registry, self._templates)
        return self._standing_in.put(version_id, workflow)

    def _why_not_here(
        self, version: WorkflowVersion, source: SourceDocument, exc: DefinitionError
    ) -> DefinitionError:
        """The error of a stored version that does not compile here: MissingStepTypesError
        when stand-ins for the custom types this process lacks are all it needs (it is
        then recorded in ``unrunnable``), else ``exc`` itself (a plugin that changed its
        input model since the push, say)."""
        try:
            standing = with_stand_ins(source, self._registry, self._templates)
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
        self._check_open()
        version = self._versions_by_id.get(version_id)
        if version is None:
            version = await self._store().get_workflow_version(version_id)
            if version is None:
                raise NotFoundError(f"workflow version {version_id} does not exist")
            self._versions_by_id.put(version_id, version)
        return version

    async def live_workflows(
        self, triggers: str
    ) -> list[tuple[WorkflowVersion, datetime, CompiledWorkflow]]:
        # The live set is held apart from the bounded caches, replaced by each call: more
        # live workflows than those hold would otherwise evict each before its next use
        # and be compiled again on every request.
        held, live = self.live, {}
        found = []
        for version_id, pushed_at in await self._store().active_workflow_ids():
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
        self.live = live
        return found
