"""Operating pushed workflows: disable and enable their triggers, delete (un-push) them,
trigger one now, backfill schedule ticks. Mixed into :class:`app.workflows.Workflows`,
so every face reaches them as ``app.workflows.<verb>``.

- A disabled workflow's schedules, webhooks and entity triggers do nothing (they read
  ``Store.active_workflow_ids``, which leaves it out); ``trigger`` and ``start`` still work.
  Enabling restarts its schedules from now, so the ticks missed meanwhile do not fire,
  unless ``catch_up`` (then each schedule's own ``catch_up`` policy applies to them).
- Deleting forgets the push (its triggers stop, ``workflows list`` no longer shows it)
  and its schedule progress; its stored versions and its executions stay as history
  (``executions prune`` removes old executions). Refused while executions of it are
  unfinished unless ``force``: those then run on, pinned to their version.
- A webhook path names one workflow: a push or an enable that would give an enabled
  workflow's path to a second one is refused (ConflictError), before anything changes,
  rather than answering every request on that path with a conflict from then on.
- A backfill starts each tick under the scheduler's own trigger key
  (``schedule:<name>:<schedule id>:<tick UTC>``), so neither it nor the scheduler ever
  starts a tick twice.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from flowledger.app.inputs import check_json_size
from flowledger.app.models import (
    MAX_BACKFILL,
    BackfillWorkflow,
    DeleteWorkflow,
    SwitchWorkflow,
    TriggerWorkflow,
)
from flowledger.app.results import BackfilledTick, WorkflowDeleted, WorkflowSwitched
from flowledger.config import Limits
from flowledger.definition.models import TriggerSpec
from flowledger.definition.ticks import due_ticks, trigger_key
from flowledger.definition.triggers import ScheduleTrigger, by_hand_trigger, compile_triggers
from flowledger.errors import ConflictError, InvalidInputError, NotFoundError
from flowledger.runtime.creation import Lineage
from flowledger.runtime.engine import Engine
from flowledger.storage.pushes import Pushed
from flowledger.storage.schedules import ScheduleState
from flowledger.timeutil import iso
from flowledger.types import ExecutionDocument
from flowledger.worker.schedules import tick_document

_USEC = timedelta(microseconds=1)


class WorkflowOperations:
    """Disable, enable, delete, trigger, backfill (see the module docstring)."""

    _engine: Engine
    _limits: Limits
    #: Wakes the workers after a trigger or a backfill started executions (App sets it).
    wake: Callable[[], Awaitable[None]] | None = None

    async def switch(self, request: SwitchWorkflow) -> WorkflowSwitched:
        """Disable or enable the workflow's triggers."""
        pushed = await self._pushed(request.name)
        restart = None
        if request.enabled and not request.catch_up:
            now = self._engine.clock.now()
            restart = [
                ScheduleState(request.name, schedule_id, spec.cron, spec.timezone, now)
                for _, schedule_id, spec in self._schedules(pushed)
            ]
        if request.enabled:
            paths = {request.name: webhook_paths(json.loads(pushed.version["document"]))}
            await self._check_webhook_paths(paths, enabling=True)
        store = self._engine.store
        changed = await store.set_workflow_disabled(request.name, not request.enabled, restart)
        if changed is None:  # un-pushed meanwhile
            raise NotFoundError(f"workflow {request.name!r} is not pushed")
        return {"name": request.name, "enabled": request.enabled, "changed": changed}

    async def delete(self, request: DeleteWorkflow) -> WorkflowDeleted:
        """Un-push the workflow (its versions and executions stay)."""
        await self._pushed(request.name)
        store = self._engine.store
        unfinished = await store.count_unfinished(request.name)
        if unfinished and not request.force:
            raise ConflictError(
                f"workflow {request.name!r} has {unfinished} unfinished executions; wait "
                "for them or cancel them, or delete with force (--force, ?force=true): "
                "they then run on"
            )
        if not await store.unpush_workflow(request.name):
            raise NotFoundError(f"workflow {request.name!r} is not pushed")
        versions = await store.list_workflow_versions(request.name)
        return {"name": request.name, "unfinished": unfinished, "versionsKept": len(versions)}

    async def trigger(self, request: TriggerWorkflow) -> ExecutionDocument:
        """Start the workflow (its live version, or ``version``) for the workers, with
        ``trigger`` ``{type: manual, arguments}`` (and a schedule's fields:
        definition.triggers.by_hand_trigger); disabled ones too, deleted ones only by
        ``version`` (as every start by name)."""
        check_json_size(request.input, self._limits.max_input, "input")
        chosen = await self._engine.resolve_version(
            request.name, request.version, pushed_only=request.version is None
        )
        workflow = await self._engine.workflow_to_read(chosen.id)  # the workers run it
        execution_id = await self._engine.start(
            workflow,
            request.input,
            trigger=by_hand_trigger(
                workflow.triggers, "manual", request.input, self._engine.clock.now()
            ),
            created_by=request.created_by,
        )
        if self.wake is not None:
            await self.wake()
        return await self._engine.get_execution(execution_id)

    async def backfill(self, request: BackfillWorkflow) -> builtins.list[BackfilledTick]:
        """Start one execution per tick of each schedule trigger in [start, end], oldest
        first; ticks started before (by anyone) are reported, not started again."""
        pushed = await self._pushed(request.name)
        schedules = self._schedules(pushed)
        if not schedules:
            raise InvalidInputError(
                f"workflow {request.name!r} has no schedule trigger to backfill", ("name",)
            )
        if request.end > self._engine.clock.now():
            raise InvalidInputError("`to` is in the future; backfill only past ticks", ("to",))
        planned: builtins.list[tuple[int, str, ScheduleTrigger, Any]] = []
        for index, schedule_id, spec in schedules:
            ticks = due_ticks(spec, request.start - _USEC, request.end, MAX_BACKFILL + 1)
            planned.extend((index, schedule_id, spec, tick) for tick in ticks)
            if len(planned) > MAX_BACKFILL:
                raise InvalidInputError(
                    f"the range holds more than {MAX_BACKFILL} ticks; backfill a shorter one",
                    ("from",),
                )
        planned.sort(key=lambda item: (item[3], item[0]))
        workflow = await self._engine.workflow_to_read(pushed.version["id"])
        done: builtins.list[BackfilledTick] = []
        for index, schedule_id, spec, tick in planned:
            # A duplicate is what this start did not create (the tick's key was taken),
            # as the insert says: a look beforehand missed the backfills racing this one.
            execution_id, created = await self._engine.start_keyed(
                workflow,
                spec.input,
                Lineage(trigger_key=trigger_key(request.name, schedule_id, tick)),
                trigger=tick_document(spec, tick),
                created_by=request.created_by,
            )
            done.append(
                {
                    "triggerIndex": index,
                    "scheduledAt": iso(tick),
                    "executionId": execution_id,
                    "duplicate": not created,
                }
            )
        if self.wake is not None and any(not d["duplicate"] for d in done):
            await self.wake()
        return done

    async def _check_webhook_paths(
        self, paths: Mapping[str, Sequence[str]], *, enabling: bool = False
    ) -> None:
        """ConflictError when one of the webhook ``paths`` of these workflows (by name) is
        already another enabled pushed workflow's, or two of them share one. A disabled
        workflow pushed again stays disabled: its paths are checked when it is enabled."""
        owners: dict[str, str] = {}
        disabled = set()
        for pushed in await self._engine.store.pushed_workflows():
            name = pushed.version["name"]
            if pushed.disabled_at is not None:
                disabled.add(name)
            elif name not in paths:
                for path in webhook_paths(json.loads(pushed.version["document"])):
                    owners[path] = name
        for name, own in paths.items():
            if name in disabled and not enabling:
                continue
            for path in own:
                owner = owners.setdefault(path, name)
                if owner != name:
                    raise ConflictError(
                        f"workflow {owner!r} already has a webhook trigger on path {path!r}, "
                        f"and a path names one workflow: give {name!r} another path, or "
                        f"disable {owner!r} first"
                    )

    async def _pushed(self, name: str) -> Pushed:
        found = await self._engine.store.pushed_workflows(name)
        if not found:
            raise NotFoundError(
                f"workflow {name!r} is not pushed (flowledger workflows push FILE pushes it)"
            )
        return found[0]

    def _schedules(self, pushed: Pushed) -> builtins.list[tuple[int, str, ScheduleTrigger]]:
        """The schedule triggers of a pushed version, with their index in ``triggers`` and
        their schedule id, read from its stored document (no plugin needed)."""
        document = json.loads(pushed.version["document"])
        specs = [TriggerSpec.model_validate(t) for t in document.get("triggers") or []]
        ignore = lambda message, path: None  # noqa: E731 - stored definitions compiled before
        return [
            (compiled.index, compiled.schedule_id, compiled.spec)
            for compiled in compile_triggers(specs, self._engine.templates, ignore)
            if isinstance(compiled.spec, ScheduleTrigger) and compiled.schedule_id is not None
        ]


def webhook_paths(document: Mapping[str, Any]) -> builtins.list[str]:
    """The webhook paths of a definition document (a stored version's, or a compiled
    workflow's ``document``): read from the document, so no plugin is needed."""
    triggers = document.get("triggers") or []
    return [t["path"] for t in triggers if t.get("type") == "webhook" and "path" in t]
