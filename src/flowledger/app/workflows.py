"""Workflows: load, validate and push definitions; list the pushed ones with their
triggers and when each schedule fires next; read their versions."""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from flowledger.app.limits import check_text_size, page_size
from flowledger.app.models import (
    GetWorkflow,
    GetWorkflowVersion,
    ListWorkflows,
    LoadWorkflow,
    PushWorkflows,
    ValidateWorkflow,
)
from flowledger.app.paging import Listing, keyset_page
from flowledger.app.results import (
    Page,
    PushedWorkflow,
    TriggerDocument,
    WorkflowDetail,
    WorkflowSummary,
    WorkflowVersionDocument,
)
from flowledger.app.workflow_ops import WorkflowOperations, webhook_paths
from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.models import TriggerSpec
from flowledger.definition.ticks import next_tick
from flowledger.definition.triggers import (
    EntityTrigger,
    ScheduleTrigger,
    WebhookTrigger,
    compile_triggers,
)
from flowledger.errors import (
    DefinitionError,
    InputError,
    NotFoundError,
    Path,
    Problem,
    UnknownWorkflowError,
    did_you_mean,
)
from flowledger.runtime.creation import validate_input
from flowledger.storage import VersionSummary, WorkflowVersion
from flowledger.storage.base import Store
from flowledger.storage.pushes import Pushed
from flowledger.storage.schedules import ScheduleState
from flowledger.templates import contains_template
from flowledger.timeutil import iso


def definition_warnings(workflow: CompiledWorkflow) -> builtins.list[str]:
    """What ``validate`` and a push take but say (tour 25 L4): a webhook trigger of a
    workflow without ``input_schema`` starts an execution for any body (a list, a form
    post as text), which then fails at its first read of the input, once per bad sender,
    instead of a 422 at the door. A warning, not a refusal: a workflow that reads the
    body as it comes (``trigger.body``) may want any body."""
    if workflow.spec.input_schema is not None:
        return []
    return [
        f"triggers[{trigger.index}]: the webhook on path {trigger.spec.path!r} takes any "
        "body, unchecked: the workflow has no input_schema, so a body it cannot use starts "
        "an execution that fails when it reads the input; declare input_schema to refuse "
        "such a body with 422"
        for trigger in workflow.triggers
        if isinstance(trigger.spec, WebhookTrigger)
    ]


@dataclass(frozen=True)
class Checked:
    """What ``check`` found valid: a workflow (``count`` steps) or a job file (``count``
    workflow files checked with it)."""

    kind: Literal["workflow", "job"]
    name: str
    count: int
    #: What the definition takes but likely should not (:func:`definition_warnings`).
    warnings: tuple[str, ...] = ()


class Workflows(Listing, WorkflowOperations):
    """The workflow operations of one application (see :class:`flowledger.app.App`);
    disable, enable, delete, trigger and backfill come from app.workflow_ops."""

    # -- definitions --------------------------------------------------------------------------

    def validate(self, request: ValidateWorkflow) -> CompiledWorkflow:
        """Load and compile a definition file; DefinitionError lists every problem.
        Needs no database."""
        return self._engine.load(request.file)

    async def check(self, request: ValidateWorkflow) -> Checked:
        """``flowledger validate``: a workflow definition, or a job-run file (a mapping
        with ``workflows`` and no ``steps``) checked as one, with the workflow files it
        names, and with ``stored`` the pushed workflows it names. Needs no database
        unless ``stored``; DefinitionError lists every problem."""
        from flowledger.definition.jobs import load_job_file
        from flowledger.definition.source import read_document
        from flowledger.runtime.job_runs import JobRuns

        source = read_document(request.file)
        data = source.data
        if isinstance(data, Mapping) and "workflows" in data and "steps" not in data:
            job = load_job_file(request.file)
            checked = await JobRuns(self._engine).check_files(job, stored=request.stored)
            return Checked("job", job.spec.name, checked)
        workflow = self.validate(request)
        if request.stored:
            problems = await self._missing_children(workflow, source.position)
            if problems:
                raise DefinitionError(problems)
        return Checked(
            "workflow", workflow.name, len(workflow.steps), tuple(definition_warnings(workflow))
        )

    async def check_children(self, workflow: CompiledWorkflow) -> None:
        """DefinitionError, located, when a ``sys.sub_workflow`` step names a workflow
        that is not pushed (or a literal input its schema refuses), or ``on_failure``
        does: what ``run`` checks before it stores an execution that would fail at that
        step (tour 24), or fail with no handler to start."""
        children = any(step.type_name == "sys.sub_workflow" for step in workflow.steps.values())
        if not children and workflow.spec.on_failure is None:
            return
        # run pushes nothing: a step that starts this workflow by name needs it pushed.
        problems = await self._missing_children(workflow, _positions(workflow), itself=True)
        if problems:
            raise DefinitionError(problems)

    async def _missing_handler(
        self,
        workflow: CompiledWorkflow,
        position: Callable[[Path], tuple[int, int] | None],
        pushing: AbstractSet[str] = frozenset(),
    ) -> builtins.list[Problem]:
        """``on_failure`` names a workflow that is neither pushed nor in ``pushing`` (the
        names pushed with it), located as a ``sys.sub_workflow``'s name is."""
        handler = workflow.spec.on_failure
        if handler is None or handler.workflow in pushing:
            return []
        try:
            await self._engine.resolve_workflow(handler.workflow, None)
        except NotFoundError as exc:
            at: Path = ("on_failure", "workflow")
            line, column = position(at) or (None, None)
            return [Problem(str(exc), workflow.file, line, column, None, at)]
        return []

    async def _missing_children(
        self,
        workflow: CompiledWorkflow,
        position: Callable[[Path], tuple[int, int] | None],
        *,
        itself: bool = False,
    ) -> builtins.list[Problem]:
        """The ``sys.sub_workflow`` steps whose literal workflow is not pushed (or whose
        version is not stored), located, as the step looks it up (Engine.resolve_child);
        names written as templates are known only when the step runs. A workflow may
        start itself: validated, it is pushed when it is; with ``itself`` (a run, which
        pushes nothing) such a step is checked too."""
        problems: builtins.list[Problem] = []
        for step in workflow.steps.values():
            raw = step.spec.input
            if step.type_name != "sys.sub_workflow" or not isinstance(raw, Mapping):
                continue
            name, version = raw.get("workflow"), raw.get("version")
            if not isinstance(name, str) or "{" in name or (name == workflow.name and not itself):
                continue
            try:
                child, _ = await self._engine.resolve_child(
                    name, version if isinstance(version, int) else None
                )
            except NotFoundError as exc:
                at = (*step.source_path, "input", "workflow")
                line, column = position(at) or (None, None)
                problems.append(Problem(str(exc), workflow.file, line, column, step.id, at))
                continue
            given = raw.get("input")
            if "items" in raw or contains_template(json.dumps(given)):
                continue  # known per item, or only when the step runs
            try:  # a literal input: checked against the child's input_schema now
                validate_input(child, given if isinstance(given, Mapping) else {})
            except InputError as exc:
                at = (*step.source_path, "input", "input")
                line, column = position(at) or (None, None)
                problems.append(Problem(str(exc), workflow.file, line, column, step.id, at))
        problems += await self._missing_handler(workflow, position)
        return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))  # as written

    async def load(self, request: LoadWorkflow) -> CompiledWorkflow:
        """A pushed workflow by that name (its pushed version), or with ``allow_file`` a
        definition file first."""
        return await self.find(request.workflow, allow_file=request.allow_file)

    async def find(
        self,
        workflow: str | CompiledWorkflow,
        version: int | None = None,
        allow_file: bool = False,
        runs_here: bool = True,
    ) -> CompiledWorkflow:
        """What a start names: a compiled workflow as is, or a pushed name (its pushed
        version, or that stored version number when given, also of a deleted workflow);
        with ``allow_file`` (and no version) a definition file first. The file-or-name
        rule stays in ``Engine.locate`` because job runs (runtime) resolve their items
        with it. A stored workflow started for the workers (not ``runs_here``) needs none
        of their plugins here: it was checked with them when it was pushed."""
        if isinstance(workflow, CompiledWorkflow):
            return workflow
        engine = self._engine
        if version is not None:
            found: CompiledWorkflow | WorkflowVersion = await engine.resolve_version(
                workflow, version
            )
        else:
            found = await engine.locate(workflow, allow_file=allow_file)
        if isinstance(found, CompiledWorkflow):
            return found
        if runs_here:
            return await engine.workflow_for_version(found.id)
        return await engine.workflow_to_read(found.id)

    # -- pushing ------------------------------------------------------------------------------

    async def push(self, request: PushWorkflows) -> builtins.list[PushedWorkflow]:
        """Push every definition, or none: all are compiled and checked (problems of
        every file reported together, two definitions of one name refused) before the
        first is stored. Each becomes the live version of its name (a new version only
        when it changed), so its triggers fire from now on."""
        engine = self._engine
        problems: builtins.list[Problem] = []
        loaded: builtins.list[tuple[str, CompiledWorkflow]] = []
        sources = [(file, None) for file in request.files] + [
            (text.file, text.text) for text in request.texts
        ]
        for file, text in sources:
            if text is not None:
                check_text_size(
                    text, self._limits.max_definition, f"the definition {file}", "max_definition"
                )
            try:
                # Off the event loop: a large definition takes a second or more to check,
                # and a server's other requests (and its worker's leases) must go on.
                compiled = await asyncio.to_thread(
                    engine.load if text is None else partial(engine.load_text, text), file
                )
            except DefinitionError as exc:
                problems.extend(exc.problems)
                continue
            loaded.append((file, compiled))
        if problems:
            raise DefinitionError(problems)
        seen: dict[str, str] = {}
        for file, compiled in loaded:
            if compiled.name in seen:
                raise InputError(
                    f"{seen[compiled.name]} and {file} both define workflow {compiled.name!r}; "
                    "push one of them"
                )
            seen[compiled.name] = file
        for _, compiled in loaded:  # a handler may be pushed with the workflow naming it
            problems += await self._missing_handler(compiled, _positions(compiled), set(seen))
        if problems:
            raise DefinitionError(problems)
        paths = {compiled.name: webhook_paths(compiled.document) for _, compiled in loaded}
        await self._check_webhook_paths(paths)
        warnings = {compiled.name: await self._push_warnings(compiled) for _, compiled in loaded}
        now = engine.clock.now()
        states = await self._schedule_states()  # a push again keeps its skipped ticks
        pushed: builtins.list[PushedWorkflow] = []
        for _, compiled in loaded:
            version, changed = await engine.push(compiled)
            pushed.append(
                {
                    "name": compiled.name,
                    "version": version.version,
                    "versionId": version.id,
                    "changed": changed,
                    "triggers": self._triggers(compiled.document, now, states, compiled.name),
                    "warnings": warnings[compiled.name],
                }
            )
        return pushed

    async def _push_warnings(self, workflow: CompiledWorkflow) -> builtins.list[str]:
        """What a push takes but the user likely mistyped or left out: the definition's
        own warnings, and an entity trigger on a type that does not exist. Not refused,
        as the type may be created after the workflow (its trigger fires from then on)."""
        warnings = definition_warnings(workflow)
        for trigger in workflow.triggers:
            spec = trigger.spec
            if not isinstance(spec, EntityTrigger):
                continue
            if await self._engine.store.get_entity_type(spec.entity_type) is None:
                warnings.append(
                    f"triggers[{trigger.index}]: no entity type {spec.entity_type!r} exists "
                    "yet; the trigger fires once it is created"
                )
        return warnings

    # -- reading ------------------------------------------------------------------------------

    async def list(self, request: ListWorkflows) -> builtins.list[WorkflowSummary]:
        """The pushed workflows by name (disabled ones too), each with its triggers and
        next fire times."""
        now = self._engine.clock.now()
        states = await self._schedule_states()
        pushed = await self._engine.store.pushed_workflows()
        return [self._summary(p, now, states) for p in pushed]

    async def page(self, request: ListWorkflows) -> Page[WorkflowSummary]:
        """One page of the pushed workflows, newest (first pushed) first: a workflow
        pushed again keeps its place, so paging is stable while others push."""
        store = self._engine.store
        rows, cursor = await keyset_page(
            await self._codec(),
            "workflows",
            {},
            request.cursor,
            page_size(request, self._limits.max_page),
            store.pushed_workflows_page,
            lambda row: (row[1], str(row[0].version["name"])),
        )
        now = self._engine.clock.now()
        states = await self._schedule_states()
        items = [self._summary(pushed, now, states) for pushed, _ in rows]
        return Page[WorkflowSummary](items=items, next_cursor=cursor)

    async def get(self, request: GetWorkflow) -> WorkflowDetail:
        """A workflow's live (pushed) version, if any, and all its stored versions."""
        store = self._engine.store
        versions = await store.list_workflow_versions(request.name)
        if not versions:
            raise await self._missing(request.name)
        pushed = await store.pushed_workflows(request.name)
        live = pushed[0] if pushed else None
        live_id = live.version["id"] if live is not None else None
        now = self._engine.clock.now()
        states = await self._schedule_states() if live is not None else {}
        return {
            "name": request.name,
            "live": self._summary(live, now, states) if live is not None else None,
            "versions": [_version(v, v.id == live_id) for v in versions],
        }

    async def check_name(self, request: GetWorkflow) -> None:
        """NotFoundError naming the stored names close to it, unless a workflow of that
        name is stored (a list filtered by a name that matches nothing says why)."""
        await check_workflow_name(self._engine.store, request.name)

    async def _missing(self, name: str) -> NotFoundError:
        return await unknown_workflow(self._engine.store, name)

    async def get_version(self, request: GetWorkflowVersion) -> WorkflowVersionDocument:
        """One stored version with its definition document and the text it came from."""
        version = await self._engine.resolve_version(request.name, request.version)
        pushed = await self._engine.store.pushed_workflows(request.name)
        live = bool(pushed) and pushed[0].version["id"] == version.id
        doc = _version(version, live)
        doc["document"] = json.loads(version.document)
        doc["source"] = version.source or _as_yaml(doc["document"])
        return doc

    async def _schedule_states(self) -> dict[tuple[str, str], ScheduleState]:
        """Each schedule trigger's progress, by (workflow, its schedule id)."""
        states = await self._engine.store.schedule_states()
        return {(s.workflow_name, s.trigger_id): s for s in states}

    def _summary(
        self, pushed: Pushed, now: datetime, states: Mapping[tuple[str, str], ScheduleState]
    ) -> WorkflowSummary:
        version = pushed.version
        enabled = pushed.disabled_at is None
        return {
            "name": version["name"],
            "version": version["version"],
            "versionId": version["id"],
            "pushedAt": iso(pushed.pushed_at),
            # A disabled workflow's schedules fire never (until enabled again).
            "triggers": self._triggers(
                json.loads(version["document"]), now, states, version["name"], enabled
            ),
            "enabled": enabled,
            "disabledAt": iso(pushed.disabled_at) if pushed.disabled_at else None,
        }

    def _triggers(
        self,
        document: Mapping[str, Any],
        now: datetime,
        states: Mapping[tuple[str, str], ScheduleState],
        name: str,
        enabled: bool = True,
    ) -> builtins.list[TriggerDocument]:
        """Triggers read from the stored document alone, so listing needs none of the
        plugins the workflow's steps use; a schedule's with its skipped ticks (``states``:
        its progress, by workflow ``name`` and schedule id)."""
        specs = [TriggerSpec.model_validate(t) for t in document.get("triggers") or []]
        found: builtins.list[TriggerDocument] = []
        ignore = lambda message, path: None  # noqa: E731 - stored definitions compiled before
        for compiled in compile_triggers(specs, self._engine.templates, ignore):
            spec = compiled.spec
            described: dict[str, Any] = {_camel(k): v for k, v in spec.model_dump().items()}
            described["nextFireAt"] = None
            if isinstance(spec, ScheduleTrigger):
                state = states.get((name, compiled.schedule_id or ""))
                described["skippedTicks"] = state.skipped_ticks if state else 0
                last = state.last_skipped_tick if state else None
                described["lastSkippedTickAt"] = iso(last) if last else None
            if isinstance(spec, ScheduleTrigger) and enabled:
                when = next_tick(spec, now)
                if when is not None:
                    described["nextFireAt"] = iso(when)
                    local = when.astimezone(ZoneInfo(spec.timezone))
                    described["nextFireAtLocal"] = local.isoformat()
            found.append(cast(TriggerDocument, described))
        return found


async def check_workflow_name(store: Store, name: str) -> None:
    """UnknownWorkflowError naming the stored names close to ``name``, unless a workflow
    of that name is stored (a filter by a name that matches nothing says why)."""
    # No name holds a NUL (PostgreSQL text cannot even be asked for one): missing.
    if "\x00" in name or not await store.list_workflow_versions(name):
        raise await unknown_workflow(store, name)


async def unknown_workflow(store: Store, name: str) -> UnknownWorkflowError:
    stored = {v.name for v in await store.list_workflow_versions()}
    hint = did_you_mean(name, stored, partial=True)
    return UnknownWorkflowError(f"there is no workflow named {name!r}{hint}")


def _version(version: WorkflowVersion | VersionSummary, live: bool) -> WorkflowVersionDocument:
    return {
        "id": version.id,
        "name": version.name,
        "version": version.version,
        "checksum": version.checksum,
        "createdAt": iso(version.created_at),
        "live": live,
    }


def _as_yaml(document: Any) -> str:
    import yaml  # only for versions stored before their text was kept

    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _positions(workflow: CompiledWorkflow) -> Callable[[Path], tuple[int, int] | None]:
    """Where a path of ``workflow`` is written (its text read again only to locate)."""
    from flowledger.definition.source import parse_document

    source = workflow.source

    def position(path: Path) -> tuple[int, int] | None:
        return None if source is None else parse_document(source, workflow.file).position(path)

    return position
