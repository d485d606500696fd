"""Operating pushed workflows: disable/enable (schedules, webhooks, entity triggers),
delete, trigger now, backfill schedule ticks exactly once (app.workflow_ops)."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime, timedelta
from typing import Any

import pytest

from flowledger.app import App, ListWorkflows, PushWorkflows, StartExecution, WorkflowText
from flowledger.app.hooks import ReceiveHook
from flowledger.app.models import (
    BackfillWorkflow,
    DeleteWorkflow,
    GetWorkflow,
    SwitchWorkflow,
    TriggerWorkflow,
)
from flowledger.errors import (
    ConflictError,
    InputError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
)
from flowledger.storage import ExecutionQuery
from flowledger.worker.entity_dispatch import EntityDispatcher
from flowledger.worker.schedules import Scheduler

EVERY_MINUTE = """\
name: minutely
input_schema: {type: object, properties: {n: {type: integer}}}
triggers:
  - {type: schedule, cron: "* * * * *", timezone: UTC, catch_up: all, input: {n: 1}}
steps:
  - {id: s, type: sys.transform, input: {value: "{{ trigger.scheduledAt }}"}}
"""

HOURLY = """\
name: hourly
triggers:
  - {type: schedule, cron: "0 * * * *", timezone: UTC, input: {n: 7}}
steps:
  - {id: s, type: sys.transform, input: {value: "{{ input.n }}"}}
"""

HOOKED = """\
name: hooked
triggers:
  - {type: webhook, path: ops-test, auth: none}
  - {type: entity, entity_type: Lead, events: [created]}
steps:
  - {id: s, type: sys.transform, input: {value: 1}}
"""


async def push(app: App, text: str) -> None:
    await app.workflows.push(PushWorkflows(texts=[WorkflowText(text=textwrap.dedent(text))]))


async def executions(app: App, workflow: str) -> list[dict[str, Any]]:
    return await app.engine.list_executions(ExecutionQuery(workflow=workflow, limit=1000))


def at_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


async def test_a_disabled_schedule_fires_nothing_and_enabling_skips_missed_ticks(app: App) -> None:
    await push(app, EVERY_MINUTE)
    scheduler = Scheduler(app.engine)
    start = at_minute(app.engine.clock.now()) + timedelta(minutes=1)
    await scheduler.run_once(now=start)  # the tick at ``start`` fires
    assert len(await executions(app, "minutely")) == 1
    assert (await app.workflows.switch(SwitchWorkflow(name="minutely", enabled=False)))["changed"]
    await scheduler.run_once(now=start + timedelta(minutes=10))
    assert len(await executions(app, "minutely")) == 1  # ten ticks passed while disabled
    [listed] = await app.workflows.list(ListWorkflows())
    assert (listed["enabled"], listed["triggers"][0]["nextFireAt"]) == (False, None)
    assert listed["disabledAt"] is not None

    app.engine.clock.offset += start + timedelta(minutes=10) - app.engine.clock.now()
    done = await app.workflows.switch(SwitchWorkflow(name="minutely", enabled=True))
    assert done == {"name": "minutely", "enabled": True, "changed": True}
    await scheduler.run_once(now=start + timedelta(minutes=10))
    assert len(await executions(app, "minutely")) == 1  # the missed ones stay missed
    await scheduler.run_once(now=start + timedelta(minutes=11, seconds=1))
    assert len(await executions(app, "minutely")) == 2  # and it fires again from now on
    [listed] = await app.workflows.list(ListWorkflows())
    assert listed["enabled"] and listed["triggers"][0]["nextFireAt"] is not None


async def test_enable_with_catch_up_fires_the_ticks_missed_while_disabled(app: App) -> None:
    await push(app, EVERY_MINUTE)
    scheduler = Scheduler(app.engine)
    start = at_minute(app.engine.clock.now()) + timedelta(minutes=1)
    await scheduler.run_once(now=start)
    await app.workflows.switch(SwitchWorkflow(name="minutely", enabled=False))
    await scheduler.run_once(now=start + timedelta(minutes=5))
    assert len(await executions(app, "minutely")) == 1
    again = await app.workflows.switch(SwitchWorkflow(name="minutely", enabled=False))
    assert again["changed"] is False
    await app.workflows.switch(SwitchWorkflow(name="minutely", enabled=True, catch_up=True))
    await scheduler.run_once(now=start + timedelta(minutes=5))
    started = await executions(app, "minutely")
    assert len(started) == 6  # the first tick, then the five missed (catch_up: all)


async def test_a_disabled_workflow_ignores_webhooks_and_entity_writes(app: App) -> None:
    await app.engine.entities.create_type("Lead")
    await push(app, HOOKED)
    await app.workflows.switch(SwitchWorkflow(name="hooked", enabled=False))
    with pytest.raises(UnavailableError, match=r"ops-test.*is disabled"):
        await app.hooks.receive(ReceiveHook(path="ops-test", body=b"{}"))
    await app.engine.entities.create("Lead", {"Email": "a@example.com"})
    dispatcher = EntityDispatcher(app.engine)
    assert await dispatcher.dispatch_pending() == []
    assert await executions(app, "hooked") == []

    await app.workflows.switch(SwitchWorkflow(name="hooked", enabled=True))
    receipt = await app.hooks.receive(ReceiveHook(path="ops-test", body=b"{}"))
    await app.engine.entities.create("Lead", {"Email": "b@example.com"})
    [from_entity] = await dispatcher.dispatch_pending()
    ids = {doc["id"] for doc in await executions(app, "hooked")}
    assert ids == {receipt["executionId"], from_entity}  # the write made while off: never


async def test_trigger_starts_now_for_the_workers_as_a_manual_trigger(app: App) -> None:
    await push(app, EVERY_MINUTE)
    await app.workflows.switch(SwitchWorkflow(name="minutely", enabled=False))
    doc = await app.workflows.trigger(TriggerWorkflow(name="minutely", input={"n": 3}))
    assert doc["runtimeStatus"] == "NotStarted"
    trigger = doc["trigger"]
    assert trigger == {
        "type": "manual",
        "arguments": {"n": 3},
        "scheduledAt": trigger["scheduledAt"],  # now: the schedule's fields, as a tick's
        "cronExpression": "* * * * *",
        "timezone": "UTC",
    }
    assert app.work_ready.is_set()  # workers of this process were woken
    with pytest.raises(InputError):
        await app.workflows.trigger(TriggerWorkflow(name="minutely", input={"n": "three"}))
    with pytest.raises(NotFoundError):
        await app.workflows.trigger(TriggerWorkflow(name="nope"))


async def test_a_start_by_hand_of_a_scheduled_workflow_reads_the_schedule_fields(
    app: App,
) -> None:
    """A workflow reading ``trigger.scheduledAt`` validated, then each start by hand
    (``workflows trigger``, ``start``, the API's start, ``run``) failed at that read
    (tour 25 M3): it now runs as a tick at the start's time would, its type aside."""
    await push(app, EVERY_MINUTE)
    now = app.engine.clock.now()
    before = now.replace(microsecond=now.microsecond // 1000 * 1000)  # scheduledAt is in ms
    triggered = await app.workflows.trigger(TriggerWorkflow(name="minutely", input={"n": 3}))
    started = await app.executions.start(StartExecution(workflow="minutely"))
    for doc in (triggered, started):
        await app.engine.drive(doc["id"])
        ended = await app.engine.get_execution(doc["id"])
        assert ended["runtimeStatus"] == "Completed", ended["error"]
        at = datetime.fromisoformat(ended["trigger"]["scheduledAt"].replace("Z", "+00:00"))
        assert before <= at <= app.engine.clock.now()
    assert started["trigger"]["type"] == "function"
    assert started["trigger"]["cronExpression"] == "* * * * *"
    await push(app, HOOKED)
    plain = await app.executions.start(StartExecution(workflow="hooked"))
    assert plain["trigger"] == {"type": "function", "arguments": {}}  # no schedule: none


async def test_delete_is_refused_while_executions_run_unless_forced(app: App) -> None:
    await push(app, EVERY_MINUTE)
    await app.workflows.trigger(TriggerWorkflow(name="minutely"))
    with pytest.raises(ConflictError, match="1 unfinished executions"):
        await app.workflows.delete(DeleteWorkflow(name="minutely"))
    done = await app.workflows.delete(DeleteWorkflow(name="minutely", force=True))
    assert done == {"name": "minutely", "unfinished": 1, "versionsKept": 1}
    assert await app.workflows.list(ListWorkflows()) == []
    assert await app.engine.store.active_workflow_ids() == []
    assert await app.engine.store.schedule_states() == []
    detail = await app.workflows.get(GetWorkflow(name="minutely"))  # history stays
    assert detail["live"] is None and len(detail["versions"]) == 1
    assert len(await executions(app, "minutely")) == 1
    with pytest.raises(NotFoundError, match="not pushed"):
        await app.workflows.delete(DeleteWorkflow(name="minutely"))


async def test_a_deleted_workflow_starts_only_by_version_number(app: App) -> None:
    """After ``delete`` (live: null, gone from lists) a start by name still ran the newest
    stored version, over the API and ``flowledger start NAME``; now it is a 404 saying
    the workflow was deleted. Its versions stay history: named by number, they start."""
    await push(app, HOURLY)
    await app.workflows.delete(DeleteWorkflow(name="hourly"))
    by_name = (
        lambda: app.executions.start(StartExecution(workflow="hourly")),
        lambda: app.executions.start(StartExecution(workflow="hourly", allow_file=True)),
        lambda: app.workflows.trigger(TriggerWorkflow(name="hourly")),
    )
    for start in by_name:
        with pytest.raises(NotFoundError) as refused:
            await start()
        assert str(refused.value) == (
            "workflow 'hourly' is not pushed: it was deleted (or only ever run from a file), "
            "so it does not start by name; push it again, or start one of its stored "
            "versions by number (1): `flowledger workflows trigger hourly --version N`, or "
            '"version": N in the API\'s start'
        )
    assert await executions(app, "hourly") == []
    pinned = await app.executions.start(StartExecution(workflow="hourly", version=1))
    triggered = await app.workflows.trigger(TriggerWorkflow(name="hourly", version=1))
    assert pinned["workflowVersion"] == triggered["workflowVersion"] == 1
    with pytest.raises(NotFoundError, match="there is no workflow named 'nope'"):
        await app.executions.start(StartExecution(workflow="nope"))
    with pytest.raises(NotFoundError, match="named 'hourl'; did you mean 'hourly'"):
        await app.executions.start(StartExecution(workflow="hourl"))
    with pytest.raises(NotFoundError, match="workflow name; did you mean 'hourly'"):
        await app.executions.start(StartExecution(workflow="hourl", allow_file=True))
    await push(app, HOURLY)  # pushed again: it starts by name again
    again = await app.executions.start(StartExecution(workflow="hourly"))
    assert again["workflowVersion"] == 1


async def test_backfill_starts_each_tick_once_with_the_schedule_trigger_data(app: App) -> None:
    await push(app, HOURLY)
    day = at_minute(app.engine.clock.now()).replace(minute=0) - timedelta(days=1)
    request = BackfillWorkflow(name="hourly", start=day, end=day + timedelta(hours=3))
    first = await app.workflows.backfill(request)
    assert [t["scheduledAt"] for t in first] == [
        (day + timedelta(hours=h)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for h in range(4)
    ]
    assert not any(t["duplicate"] for t in first)
    doc = await app.engine.get_execution(first[0]["executionId"])
    assert doc["trigger"] == {
        "type": "schedule",
        "scheduledAt": first[0]["scheduledAt"],
        "cronExpression": "0 * * * *",
        "timezone": "UTC",
        "arguments": {"n": 7},
    }
    assert doc["createdBy"] == "python"

    overlap = BackfillWorkflow(
        name="hourly", start=day + timedelta(hours=2), end=day + timedelta(hours=4)
    )
    second = await app.workflows.backfill(overlap)
    assert [t["duplicate"] for t in second] == [True, True, False]
    assert second[0]["executionId"] == first[2]["executionId"]
    assert len(await executions(app, "hourly")) == 5


async def test_concurrent_backfills_say_which_ticks_each_started(app: App) -> None:
    """Four backfills of one range at once: each tick is started once, and only the
    backfill that started it says ``duplicate: false`` (all four said so: the flag came
    from a look before the start, which the other backfills raced)."""
    await push(app, HOURLY)
    day = at_minute(app.engine.clock.now()).replace(minute=0) - timedelta(days=1)
    request = BackfillWorkflow(name="hourly", start=day, end=day + timedelta(hours=10))
    answers = await asyncio.gather(*(app.workflows.backfill(request) for _ in range(4)))
    started = await executions(app, "hourly")
    assert len(started) == 11
    for tick in range(11):
        ids = {answer[tick]["executionId"] for answer in answers}
        assert len(ids) == 1
        assert [answer[tick]["duplicate"] for answer in answers].count(False) == 1
    assert sum(not t["duplicate"] for answer in answers for t in answer) == len(started)


async def one_tick_fired(app: App) -> tuple[datetime, dict[str, Any]]:
    """The scheduler starts the next hourly tick; the clock then moves a minute past it.
    That tick and its execution."""
    tick = at_minute(app.engine.clock.now()).replace(minute=0) + timedelta(hours=1)
    await Scheduler(app.engine).run_once(now=tick + timedelta(seconds=5))
    [fired] = await executions(app, "hourly")
    app.engine.clock.offset += tick + timedelta(minutes=1) - app.engine.clock.now()
    return tick, fired


async def test_a_backfill_and_the_scheduler_never_start_the_same_tick_twice(app: App) -> None:
    await push(app, HOURLY)
    tick, fired = await one_tick_fired(app)
    request = BackfillWorkflow(name="hourly", start=tick - timedelta(hours=1), end=tick)
    done = await app.workflows.backfill(request)
    assert [(t["duplicate"], t["executionId"] == fired["id"]) for t in done] == [
        (False, False),
        (True, True),
    ]
    # The scheduler, later, does not start the backfilled ones either.
    await Scheduler(app.engine).run_once(now=tick + timedelta(seconds=30))
    assert len(await executions(app, "hourly")) == 2


async def test_backfill_is_not_subject_to_overlap_but_its_executions_count(app: App) -> None:
    """A backfill is the operator's explicit request: each of its ticks starts although
    the schedule's own tick has not finished (overlap: skip). Its executions are the
    trigger's too, so the next scheduled tick is skipped while they run."""
    await push(app, HOURLY.replace("input: {n: 7}", "input: {n: 7}, overlap: skip"))
    tick, fired = await one_tick_fired(app)
    request = BackfillWorkflow(name="hourly", start=tick - timedelta(hours=3), end=tick)
    done = await app.workflows.backfill(request)
    assert [t["duplicate"] for t in done] == [False, False, False, True]
    await app.engine.drive(fired["id"])  # the scheduled one ends; the backfilled ones wait
    await Scheduler(app.engine).run_once(now=tick + timedelta(hours=1, seconds=5))
    assert len(await executions(app, "hourly")) == 4


async def test_backfill_refuses_what_it_cannot_do(app: App) -> None:
    await push(app, HOURLY)
    await push(app, HOOKED)
    now = app.engine.clock.now()
    with pytest.raises(InvalidInputError, match="in the future"):
        await app.workflows.backfill(
            BackfillWorkflow(name="hourly", start=now, end=now + timedelta(hours=2))
        )
    with pytest.raises(InvalidInputError, match="more than 1000 ticks"):
        await app.workflows.backfill(
            BackfillWorkflow(name="hourly", start=now - timedelta(days=60), end=now)
        )
    with pytest.raises(InvalidInputError, match="no schedule trigger"):
        await app.workflows.backfill(BackfillWorkflow(name="hooked", start=now, end=now))
    with pytest.raises(NotFoundError, match="not pushed"):
        await app.workflows.backfill(BackfillWorkflow(name="nope", start=now, end=now))
    with pytest.raises(InvalidInputError, match="time zone"):
        BackfillWorkflow(name="hourly", start=datetime(2026, 1, 1), end=now)
    with pytest.raises(InvalidInputError, match="`to` is before `from`"):
        BackfillWorkflow(name="hourly", start=now, end=now - timedelta(hours=1))
    assert await executions(app, "hourly") == []
