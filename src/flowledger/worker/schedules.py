"""Worker duty: schedule triggers: one execution per tick, whatever the number of workers.

When ticks fall is :mod:`flowledger.definition.ticks`. Every tick starts its execution
under the trigger key ``schedule:<workflow>:<schedule id>:<tick in UTC>``, which the
database keeps unique, so workers that race, or one that crashes between starting and
recording its progress, never start a tick twice. Progress (the newest tick dealt with) is
then recorded with a compare-and-set; counting starts when the workflow was pushed, so a
fresh push never fires a backlog. A schedule is known by its ``schedule_id`` (its cron,
time zone and input: definition.triggers), never by its place in ``triggers``, so a push
that inserts, removes or reorders triggers moves no schedule's progress nor its unfinished
ticks to another; the progress of a schedule the live version no longer has is deleted,
so one brought back later counts from its new push, not from its old last tick. Under
``catch_up: all`` a warning says how many older missed ticks were dropped.

A trigger's ``overlap`` is applied where each tick starts, catch-up ticks included: under
``skip`` and ``cancel_previous`` one indexed read finds the trigger's unfinished
executions (any tick's, backfilled ones too). Workers that race on a tick may decide
differently only when one of those ends meanwhile; the tick's key still lets at most
one execution start.

A tick whose input breaks ``input_schema`` (a version stored before such input was
refused at validation) is kept as a ``Failed`` execution that says why (worker.refusals),
under the tick's key: listed with the workflow's executions, not only in a log.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from flowledger.definition.compiled import CompiledWorkflow
from flowledger.definition.ticks import (
    BATCH,
    GRACE,
    MAX_CATCH_UP,
    next_tick,
    plan_ticks,
    trigger_key,
    trigger_key_prefix,
)
from flowledger.definition.triggers import CompiledTrigger, ScheduleTrigger
from flowledger.errors import (
    ConflictError,
    FlowledgerError,
    InputError,
    NotFoundError,
    StorageError,
)
from flowledger.logs import log_extra
from flowledger.runtime.creation import Lineage, execution_rows
from flowledger.runtime.engine import Engine
from flowledger.storage import WorkflowVersion
from flowledger.storage.schedules import ScheduleState
from flowledger.timeutil import iso
from flowledger.worker.refusals import refused

log = logging.getLogger(__name__)

#: How long to wait when no schedule is active (the worker looks at least every second).
IDLE = 60.0


def tick_document(spec: ScheduleTrigger, tick: datetime) -> dict[str, Any]:
    """The ``trigger`` of a tick's execution (SPEC §3), whoever starts it (the scheduler,
    a backfill)."""
    return {
        "type": "schedule",
        "scheduledAt": iso(tick),
        "cronExpression": spec.cron,
        "timezone": spec.timezone,
        # What ``input`` reads in templates, as for a function trigger.
        "arguments": spec.input,
    }


#: The unfinished executions a skip or a cancel names in its log line (a backfill can
#: leave a thousand: the line says how many more).
_NAMED = 3


class Scheduler:
    """Fires the schedule triggers of every pushed workflow; safe on any number of workers."""

    name = "schedules"
    paced = False

    def __init__(
        self,
        engine: Engine,
        *,
        grace: timedelta = GRACE,
        max_catch_up: int = MAX_CATCH_UP,
        batch: int = BATCH,
    ) -> None:
        self.engine = engine
        self.grace = grace
        self.max_catch_up = max_catch_up
        self.batch = batch
        #: Per version id: does its document have a schedule trigger (read once: immutable).
        self._scheduled: dict[str, bool] = {}
        #: Versions that do not compile here (a plugin missing?): reported once, not per round.
        self._broken: set[str] = set()

    async def run_once(self, now: datetime | None = None) -> float:
        """Start every due tick; return the seconds until the next one.

        ``now`` (default: the database clock) lets tests put the scheduler at any moment.
        """
        now = now or self.engine.clock.now()
        store = self.engine.store
        # Which workflows are enabled is read before their progress: an enable rewrites the
        # progress in its own transaction, so an enabled one is never paired with the
        # progress from before it was disabled (which would catch up on the missed ticks).
        # Ids only: the engine keeps each version once read (definitions never change).
        active = await store.active_workflow_ids()
        states = {(s.workflow_name, s.trigger_id): s for s in await store.schedule_states()}
        recorded: dict[str, set[str]] = {}
        for name, trigger_id in states:
            recorded.setdefault(name, set()).add(trigger_id)
        wait = IDLE
        for version_id, pushed_at in active:
            version = await self.engine.workflow_version(version_id)
            workflow = await self._compile(version)
            if workflow is None:
                if not self._scheduled[version.id]:  # none of its schedules is live
                    await self._forget(version.name, recorded.get(version.name), frozenset())
                continue
            live = frozenset(t.schedule_id for t in workflow.triggers if t.schedule_id)
            await self._forget(workflow.name, recorded.get(workflow.name), live)
            for trigger in workflow.triggers:
                if not isinstance(trigger.spec, ScheduleTrigger):
                    continue
                assert trigger.schedule_id is not None  # every schedule has one
                state = states.get((workflow.name, trigger.schedule_id))
                more = await self._fire(workflow, version, trigger, state, pushed_at, now)
                upcoming = next_tick(trigger.spec, now)
                if more:
                    wait = 0.0
                elif upcoming is not None:
                    wait = min(wait, (upcoming - now).total_seconds())
        return max(0.0, wait)  # each tick's start woke the workers as it was created

    async def _forget(self, name: str, recorded: set[str] | None, live: frozenset[str]) -> None:
        """Delete the progress ``recorded`` for ``name``'s schedules that are not ``live``
        (a version with no schedule: all of it), when there is any. A worker still on the
        version before a push may delete a schedule's progress just recorded: it then
        counts from its push again, and the ticks' keys keep each from starting twice."""
        if recorded and not recorded <= live:
            await self.engine.store.forget_schedule_states(name, live)

    async def _compile(self, version: WorkflowVersion) -> CompiledWorkflow | None:
        scheduled = self._scheduled.get(version.id)
        if scheduled is None:
            triggers = json.loads(version.document).get("triggers") or []
            scheduled = any(isinstance(t, dict) and t.get("type") == "schedule" for t in triggers)
            self._scheduled[version.id] = scheduled
        if not scheduled or version.id in self._broken:
            return None
        try:
            return await self.engine.workflow_for_version(version.id)
        except StorageError:
            raise
        except FlowledgerError as exc:
            self._broken.add(version.id)
            log.error(
                "workflow %s version %d cannot be loaded by this worker, so it does not fire "
                "its schedules here: %s",
                version.name,
                version.version,
                exc,
                extra=log_extra("load_schedule"),
            )
            return None

    async def _fire(
        self,
        workflow: CompiledWorkflow,
        version: WorkflowVersion,
        trigger: CompiledTrigger,
        state: ScheduleState | None,
        pushed_at: datetime,
        now: datetime,
    ) -> bool:
        """Start the trigger's due ticks and record how far it got; whether more are due."""
        spec = trigger.spec
        assert isinstance(spec, ScheduleTrigger)
        since = pushed_at
        if state is not None:
            same = (state.cron, state.timezone) == (spec.cron, spec.timezone)
            # An edited schedule counts afresh from its push, never before its last tick.
            since = state.last_tick if same else max(pushed_at, state.last_tick)
        plan = plan_ticks(
            spec, since, now, grace=self.grace, cap=self.max_catch_up, batch=self.batch
        )
        if plan.dropped:
            self._report_dropped(workflow.name, trigger.index, spec, since, plan.fire)
        skipped = [
            tick for tick in plan.fire if not await self._start(workflow, version, trigger, tick)
        ]
        if plan.last_tick is not None:
            assert trigger.schedule_id is not None
            progress = ScheduleState(
                workflow.name,
                trigger.schedule_id,
                spec.cron,
                spec.timezone,
                plan.last_tick,
                (state.skipped_ticks if state else 0) + len(skipped),
                skipped[-1] if skipped else state.last_skipped_tick if state else None,
            )
            if not await self.engine.store.save_schedule_state(progress, state):
                log.debug(
                    "schedule trigger %d of %s: another worker recorded it first",
                    trigger.index,
                    workflow.name,
                    extra=log_extra("fire_schedule"),
                )
        return plan.more

    async def _start(
        self,
        workflow: CompiledWorkflow,
        version: WorkflowVersion,
        trigger: CompiledTrigger,
        tick: datetime,
    ) -> bool:
        """Start the tick's execution; False when ``overlap: skip`` skipped it (a tick
        whose input does not fit starts a Failed execution that says so)."""
        index, spec, schedule_id = trigger.index, trigger.spec, trigger.schedule_id
        assert isinstance(spec, ScheduleTrigger) and schedule_id is not None
        if spec.overlap != "allow" and not await self._make_room(
            workflow.name, trigger, spec, tick
        ):
            return False
        document = tick_document(spec, tick)
        lineage = Lineage(trigger_key=trigger_key(workflow.name, schedule_id, tick))
        try:
            execution_id = await self.engine.start(
                workflow, spec.input, trigger=document, created_by="schedule", lineage=lineage
            )
        except InputError as exc:  # retrying cannot make the input fit: the tick fails
            message = f"schedule trigger {index} of {workflow.name}: tick {iso(tick)}: {exc}"
            row, created = execution_rows(
                workflow,
                version,
                trigger=document,
                now=self.engine.clock.now(),
                created_by="schedule",
                lineage=lineage,
            )
            rows = [created, *refused(row, message)]
            execution_id = await self.engine.store.create_execution(row, rows)
            log.error(
                "%s (execution %s, Failed)",
                message,
                execution_id,
                extra=log_extra("fire_schedule", execution_id),
            )
            return True
        log.info(
            "schedule trigger %d of %s: tick %s is execution %s",
            index,
            workflow.name,
            iso(tick),
            execution_id,
            extra=log_extra("fire_schedule", execution_id),
        )
        return True

    async def _make_room(
        self, workflow_name: str, trigger: CompiledTrigger, spec: ScheduleTrigger, tick: datetime
    ) -> bool:
        """Apply ``overlap`` before the tick starts; whether it may start."""
        assert trigger.schedule_id is not None
        prefix = trigger_key_prefix(workflow_name, trigger.schedule_id)
        unfinished = await self.engine.store.unfinished_ticks(workflow_name, prefix)
        if not unfinished or prefix + iso(tick) in {key for _, key in unfinished}:
            return True  # nothing runs, or this tick started already (decided back then)
        where = f"schedule trigger {trigger.index} of {workflow_name}: tick {iso(tick)}"
        named = [f"{eid} (tick {key[len(prefix) :]})" for eid, key in unfinished[:_NAMED]]
        more = len(unfinished) - len(named)
        earlier = ", ".join(named) + (f" and {more:,} more" if more else "")
        if spec.overlap == "skip":
            log.info(
                "%s skipped: %s not finished yet (overlap: skip)",
                where,
                earlier,
                extra=log_extra("fire_schedule"),
            )
            return False
        log.info("%s cancels %s", where, earlier, extra=log_extra("fire_schedule"))
        reason = f"{where} replaces it (overlap: cancel_previous)"
        await self._cancel([eid for eid, _ in unfinished], reason)
        return True

    async def _cancel(self, execution_ids: list[str], reason: str) -> None:
        """Send each a cancel (as ``executions cancel`` does), not waiting for it to end."""
        for execution_id in execution_ids:
            try:
                await self.engine.cancel(execution_id, by="schedule", reason=reason)
            except (ConflictError, NotFoundError):  # it ended meanwhile: nothing to cancel
                continue

    def _report_dropped(
        self,
        workflow_name: str,
        index: int,
        spec: ScheduleTrigger,
        since: datetime,
        fired: tuple[datetime, ...],
    ) -> None:
        if spec.catch_up == "all":
            log.warning(
                "schedule trigger %d of %s missed more than %d ticks while no worker ran; "
                "only the newest %d fire (catch_up: all is capped)",
                index,
                workflow_name,
                self.max_catch_up,
                self.max_catch_up,
                extra=log_extra("fire_schedule"),
            )
        else:
            # Under none and latest the missed ticks are not counted (plan_ticks): say
            # since when, and which one starts, if any.
            starts = (
                f"starts only the newest, {iso(fired[-1])}"
                if fired
                else "starts none of them (the next starts at its time)"
            )
            log.info(
                "schedule trigger %d of %s missed ticks after %s while no worker ran; "
                "catch_up: %s %s",
                index,
                workflow_name,
                iso(since),
                spec.catch_up,
                starts,
                extra=log_extra("fire_schedule"),
            )
