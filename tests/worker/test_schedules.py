"""The Scheduler duty: each tick fires exactly once across workers, restarts and crashes
(the tick arithmetic itself: tests/definition/test_ticks.py).

The scheduler takes ``now`` as an argument, so tests put it at any moment instead of
waiting for real minutes; one test runs real workers on an every-second schedule.
"""

from __future__ import annotations

import asyncio
import logging
import textwrap
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, update

from flowledger import Engine, StepRegistry
from flowledger.definition.strictness import stored_definitions
from flowledger.definition.ticks import GRACE, next_fire_times, next_tick
from flowledger.definition.triggers import ScheduleTrigger
from flowledger.errors import DefinitionError
from flowledger.storage import ExecutionQuery
from flowledger.storage.schedules import ScheduleState
from flowledger.storage.schema import workflows
from flowledger.storage.schema_schedules import schedule_states
from flowledger.storage.sql import SQLStore
from flowledger.timeutil import iso
from flowledger.worker.schedules import Scheduler
from flowledger.worker.worker import Worker, WorkerOptions
from tests.conftest import REPO
from tests.definition.test_ticks import walk

SECOND = timedelta(seconds=1)


# -- the Scheduler duty ------------------------------------------------------------------------


def workflow_text(
    name: str, cron: str, catch_up: str, step: str = "sys.transform, input: {value: 1}"
) -> str:
    return (
        textwrap.dedent(
            """
        name: NAME
        input_schema: {type: object, properties: {who: {type: string}}, required: [who]}
        triggers:
          - {type: function}
          - {type: schedule, cron: "CRON", catch_up: CATCH, input: {who: cron}}
        output: {at: "{{ trigger.scheduledAt }}", who: "{{ input.who }}"}
        steps:
          - {id: only, type: STEP}
        """
        )
        .replace("NAME", name)
        .replace("CRON", cron)
        .replace("CATCH", catch_up)
        .replace("STEP", step)
    )


@pytest.fixture
def engine_free(registry: StepRegistry) -> Engine:
    """An engine that is never opened: enough to compile definitions."""
    return Engine("sqlite://", registry=registry)


async def push(engine: Engine, text: str) -> tuple[ScheduleTrigger, datetime]:
    """Push a definition; its schedule trigger and when it was pushed."""
    workflow = engine.load_text(text, "schedule.yaml")
    version, _ = await engine.push(workflow)
    live = await engine.store.active_workflow_ids()
    [pushed_at] = [at for version_id, at in live if version_id == version.id]
    spec = workflow.triggers[1].spec
    assert isinstance(spec, ScheduleTrigger)
    return spec, pushed_at


def schedule_id(engine: Engine, name: str) -> str:
    """The schedule id of :func:`workflow_text`'s schedule trigger."""
    found = engine.load_text(workflow_text(name, "*/5 * * * *", "all")).triggers[1].schedule_id
    assert found is not None
    return found


def upcoming(spec: ScheduleTrigger, after: datetime, count: int) -> list[datetime]:
    found = [next_tick(spec, after)]
    while len(found) < count:
        found.append(next_tick(spec, found[-1]))
    return [f for f in found if f is not None]


async def fired(engine: Engine, name: str) -> list[str]:
    """scheduledAt of every execution the schedule started, oldest first."""
    docs = await engine.list_executions(ExecutionQuery(workflow=name, limit=1000))
    assert all(d["createdBy"] == "schedule" for d in docs)
    return sorted(d["trigger"]["scheduledAt"] for d in docs)


def iso_all(moments: Sequence[datetime]) -> list[str]:
    return [m.strftime("%Y-%m-%dT%H:%M:%S.000Z") for m in moments]


async def test_each_tick_starts_one_execution_with_the_trigger_document(engine: Engine) -> None:
    spec, pushed_at = await push(engine, workflow_text("report", "*/5 * * * *", "none"))
    t1, t2 = upcoming(spec, pushed_at, 2)
    scheduler = Scheduler(engine)
    assert await scheduler.run_once(t1 - SECOND) == pytest.approx(1.0)  # seconds to the tick
    assert await fired(engine, "report") == []
    await scheduler.run_once(t1 + SECOND)
    await scheduler.run_once(t1 + 2 * SECOND)  # the same tick again: nothing new
    assert await fired(engine, "report") == iso_all([t1])
    [doc] = await engine.list_executions(ExecutionQuery(workflow="report"))
    assert doc["trigger"] == {
        "type": "schedule",
        "scheduledAt": iso_all([t1])[0],
        "cronExpression": "*/5 * * * *",
        "timezone": "UTC",
        "arguments": {"who": "cron"},
    }
    done = await engine.drive(doc["id"])
    assert done["output"] == {"at": iso_all([t1])[0], "who": "cron"}
    assert done["workflowVersion"] == 1  # the pushed version, not a copy of it
    await scheduler.run_once(t2)
    assert await fired(engine, "report") == iso_all([t1, t2])


async def test_a_fresh_push_fires_no_backlog(engine: Engine) -> None:
    spec, pushed_at = await push(engine, workflow_text("fresh", "* * * * *", "all"))
    [t1] = upcoming(spec, pushed_at, 1)
    await Scheduler(engine).run_once(t1 - SECOND)
    assert await fired(engine, "fresh") == []  # the minutes before the push do not count


@pytest.mark.parametrize(
    ("catch_up", "after_restart"),
    [("none", []), ("latest", [3]), ("all", [1, 2, 3])],
)
async def test_a_sleeping_schedule_catches_up_once_after_a_restart(
    db_url: str,
    registry: StepRegistry,
    catch_up: str,
    after_restart: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Engine(db_url, registry=registry) as first:
        spec, pushed_at = await push(first, workflow_text("nap", "*/5 * * * *", catch_up))
        ticks = upcoming(spec, pushed_at, 5)
        await Scheduler(first).run_once(ticks[0] + SECOND)
        assert await fired(first, "nap") == iso_all(ticks[:1])
    # Nothing runs while ticks 1..3 come due; a new engine wakes up long after the last.
    async with Engine(db_url, registry=registry) as second:
        woken = ticks[3] + GRACE + 30 * SECOND
        scheduler = Scheduler(second)
        expected = iso_all([ticks[0], *(ticks[i] for i in after_restart)])
        for _ in range(2):
            with caplog.at_level(logging.INFO, logger="flowledger.worker.schedules"):
                await scheduler.run_once(woken)
            assert await fired(second, "nap") == expected
        # The log said the same for none and latest, and neither since when nor what starts.
        said = [r.getMessage() for r in caplog.records if "missed" in r.getMessage()]
        assert len(said) == (catch_up != "all"), said  # all: each fires, nothing is missed
        if catch_up == "none":
            assert f"after {iso(ticks[0])}" in said[0], said
            assert "catch_up: none starts none of them" in said[0], said
        elif catch_up == "latest":
            assert f"catch_up: latest starts only the newest, {iso(ticks[3])}" in said[0], said
        await Scheduler(second).run_once(ticks[4] + SECOND)  # a fresh worker, on time again
        assert await fired(second, "nap") == sorted([*expected, *iso_all(ticks[4:])])


async def test_a_tick_due_during_a_short_restart_still_fires_under_none(engine: Engine) -> None:
    spec, pushed_at = await push(engine, workflow_text("short", "*/5 * * * *", "none"))
    [t1] = upcoming(spec, pushed_at, 1)
    await Scheduler(engine).run_once(t1 + GRACE - SECOND)
    assert await fired(engine, "short") == iso_all([t1])


async def test_a_crash_before_progress_is_recorded_starts_nothing_twice(engine: Engine) -> None:
    spec, pushed_at = await push(engine, workflow_text("crashy", "*/5 * * * *", "all"))
    ticks = upcoming(spec, pushed_at, 3)
    await Scheduler(engine).run_once(ticks[2] + SECOND)
    store = engine.store
    assert isinstance(store, SQLStore)
    with store.conn.begin():  # as if the process died right after starting the executions
        store.conn.execute(delete(schedule_states))
    await Scheduler(engine).run_once(ticks[2] + 2 * SECOND)
    assert await fired(engine, "crashy") == iso_all(ticks)


async def test_an_edited_schedule_counts_from_its_push_and_an_unchanged_one_continues(
    engine: Engine,
) -> None:
    spec, pushed_at = await push(engine, workflow_text("edit", "*/5 * * * *", "all"))
    store = engine.store
    month_ago = pushed_at - timedelta(days=30)
    # Progress made under another cron a month ago: the edit starts the count afresh.
    # (The edited one is another schedule now; a row of before revision 0016 kept its
    # index's, which the scheduler still reads as another cron's.)
    edited = ScheduleState("edit", schedule_id(engine, "edit"), "0 0 1 1 *", "UTC", month_ago)
    await store.save_schedule_state(edited, None)
    [t1] = upcoming(spec, pushed_at, 1)
    await Scheduler(engine).run_once(t1 + SECOND)
    assert await fired(engine, "edit") == iso_all([t1])
    # The same cron, last fired an hour before this push (a re-push): it goes on from there.
    spec2, pushed2 = await push(engine, workflow_text("same", "*/5 * * * *", "all"))
    hour_ago = next_tick(spec2, pushed2 - timedelta(hours=1))
    assert hour_ago is not None
    same = ScheduleState("same", schedule_id(engine, "same"), spec2.cron, "UTC", hour_ago)
    await store.save_schedule_state(same, None)
    [u1] = upcoming(spec2, pushed2, 1)
    await Scheduler(engine).run_once(u1 + SECOND)
    assert await fired(engine, "same") == iso_all(walk(spec2, hour_ago, u1))


def schedules_text(name: str, *triggers: str) -> str:
    """A workflow with these schedule triggers (flow-style YAML), after a function one."""
    listed = "".join(f"\n  - {t}" for t in triggers)
    return (
        f"name: {name}\n"
        "input_schema: {type: object, properties: {who: {type: string}}, required: [who]}\n"
        f"triggers:\n  - {{type: function}}{listed}\n"
        "steps:\n  - {id: only, type: sys.transform, input: {value: 1}}\n"
    )


def schedule(
    who: str, catch_up: str = "all", overlap: str = "allow", cron: str = "*/5 * * * *"
) -> str:
    return (
        f'{{type: schedule, cron: "{cron}", catch_up: {catch_up}, overlap: {overlap}, '
        f"input: {{who: {who}}}}}"
    )


async def fired_for(engine: Engine, name: str) -> dict[str, list[str]]:
    """scheduledAt of every execution each schedule started (by its input's who)."""
    docs = await engine.list_executions(ExecutionQuery(workflow=name, limit=1000))
    found: dict[str, list[str]] = {}
    for doc in docs:
        found.setdefault(doc["trigger"]["arguments"]["who"], []).append(
            doc["trigger"]["scheduledAt"]
        )
    return {who: sorted(at) for who, at in found.items()}


#: A yearly schedule, which fires at none of the ticks these tests look at.
YEARLY = schedule("b", cron="0 0 1 1 *")


@pytest.mark.parametrize(
    ("v1", "v2", "b_fires"),
    [
        # b (new) takes a's place in ``triggers`` and a moves one down: b fires the
        # current tick (catch_up none counts from its push), a goes on from its own t1
        ([schedule("a")], [schedule("b", "none"), schedule("a")], [3]),
        # a and b swap places
        ([schedule("a"), YEARLY], [YEARLY, schedule("a")], []),
        # a trigger before a is removed
        ([YEARLY, schedule("a")], [schedule("a")], []),
    ],
    ids=["inserted_before", "swapped", "removed_before"],
)
async def test_a_schedule_keeps_its_progress_when_other_triggers_move(
    engine: Engine, v1: list[str], v2: list[str], b_fires: list[int]
) -> None:
    """A schedule's progress was keyed by its position in ``triggers``: after a push that
    moved it, it took another's (or none) and fired again the tick it had fired, and the
    trigger put in its old place took its progress."""
    workflow = engine.load_text(schedules_text("moved", *v1))
    [spec] = [t.spec for t in workflow.triggers if "'a'" in repr(t.spec)]
    assert isinstance(spec, ScheduleTrigger)
    await engine.push(workflow)
    [(_, pushed_at)] = await engine.store.active_workflow_ids()
    ticks = [pushed_at, *upcoming(spec, pushed_at, 3)]
    await Scheduler(engine).run_once(ticks[1] + SECOND)
    assert await fired_for(engine, "moved") == {"a": iso_all(ticks[1:2])}
    await push_text(engine, schedules_text("moved", *v2))
    await Scheduler(engine).run_once(ticks[3] + SECOND)  # no worker ran at t2: caught up now
    after = await fired_for(engine, "moved")
    assert after.pop("a") == iso_all(ticks[1:])  # each tick once, from its own progress
    assert after.get("b", []) == iso_all([ticks[i] for i in b_fires])


async def push_text(engine: Engine, text: str) -> None:
    await engine.push(engine.load_text(text))


async def test_a_moved_schedule_skips_for_its_own_unfinished_ticks_only(engine: Engine) -> None:
    """overlap: skip looked for the unfinished executions of the trigger in the same
    position: after a push put b where a was, b skipped because a's tick still ran, and a
    started although it did."""
    a, b = schedule("a", "none", "skip"), schedule("b", "none", "skip")
    spec, pushed_at = await push(engine, schedules_text("busy", a))
    t1, t2 = upcoming(spec, pushed_at, 2)
    await Scheduler(engine).run_once(t1 + SECOND)  # a's t1: queued, never finished here
    await push_text(engine, schedules_text("busy", b, a))
    await Scheduler(engine).run_once(t2 + SECOND)
    assert await fired_for(engine, "busy") == {"a": iso_all([t1]), "b": iso_all([t2])}


async def test_a_schedule_brought_back_counts_from_its_new_push(engine: Engine) -> None:
    """A push that removes a schedule ends it: its progress is forgotten once a worker
    sees that version, so a later push that brings it back does not catch up on the
    ticks of while it was gone. A version with no schedule at all forgets them all."""
    a = schedule("a")
    spec, pushed_at = await push(engine, schedules_text("back", a))
    t1, t2, t3 = upcoming(spec, pushed_at, 3)
    scheduler = Scheduler(engine)
    await scheduler.run_once(t1 + SECOND)
    await push_text(engine, schedules_text("back", schedule("b", cron="0 0 1 1 *")))
    await scheduler.run_once(t1 + 2 * SECOND)
    assert [s.workflow_name for s in await engine.store.schedule_states()] == []
    await push_text(engine, schedules_text("back", a))
    store = engine.store
    assert isinstance(store, SQLStore)
    with store.conn.begin():  # as if it were pushed back after t2, while no worker ran
        store.conn.execute(update(workflows).values(pushed_at=t2 + SECOND))
    await scheduler.run_once(t3 + SECOND)
    assert await fired_for(engine, "back") == {"a": iso_all([t1, t3])}  # not t2
    await push_text(engine, schedules_text("back").replace("  - {type: function}", "  []"))
    await scheduler.run_once(t3 + 2 * SECOND)
    assert await engine.store.schedule_states() == []


async def test_a_tick_whose_input_does_not_fit_is_a_failed_execution_that_says_why(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A version stored before such input was refused at validation: each tick is kept as
    a Failed execution (listed, not only logged), once however often the tick is seen."""
    text = workflow_text("misfit", "*/5 * * * *", "none").replace("who: cron", "whom: cron")
    with pytest.raises(DefinitionError, match="'who' is a required property"):
        engine.load_text(text)  # refused where it is written now
    with stored_definitions():
        spec, pushed_at = await push(engine, text)
    t1, t2 = upcoming(spec, pushed_at, 2)
    scheduler = Scheduler(engine)
    with caplog.at_level(logging.ERROR, logger="flowledger.worker.schedules"):
        await scheduler.run_once(t1 + SECOND)
        await scheduler.run_once(t1 + 2 * SECOND)
    [record] = caplog.records  # once: the tick is recorded as dealt with
    assert "schedule trigger 1 of misfit" in record.getMessage()
    [doc] = await engine.list_executions(ExecutionQuery(workflow="misfit"))
    assert (doc["runtimeStatus"], doc["createdBy"]) == ("Failed", "schedule")
    assert doc["trigger"]["scheduledAt"] == iso_all([t1])[0]
    assert doc["trigger"]["arguments"] == {"whom": "cron"}
    message = doc["error"]["message"]
    assert message.startswith(f"schedule trigger 1 of misfit: tick {iso_all([t1])[0]}: ")
    assert "input_schema" in message and "'who' is a required property" in message
    assert doc["id"] in record.getMessage()
    kinds = [e["kind"] for e in await engine.events(doc["id"])]
    assert kinds == ["execution.created", "execution.started", "execution.failed"]
    await scheduler.run_once(t2 + SECOND)  # the schedule goes on: each tick says so
    assert await fired(engine, "misfit") == iso_all([t1, t2])


async def test_a_workflow_this_worker_cannot_load_does_not_stop_the_others(
    db_url: str, registry: StepRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    async with Engine(db_url, registry=registry) as pusher:
        spec, pushed_at = await push(pusher, workflow_text("plain", "*/5 * * * *", "none"))
        await push(
            pusher,
            workflow_text(
                "custom", "*/5 * * * *", "none", step="test.flaky, input: {name: custom}"
            ),
        )
    [t1] = upcoming(spec, pushed_at, 1)
    async with Engine(db_url, registry=StepRegistry.with_builtins()) as bare:
        scheduler = Scheduler(bare)
        with caplog.at_level(logging.ERROR, logger="flowledger.worker.schedules"):
            await scheduler.run_once(t1 + SECOND)
            await scheduler.run_once(t1 + 2 * SECOND)
        assert await fired(bare, "plain") == iso_all([t1])
        assert await fired(bare, "custom") == []
    [record] = caplog.records
    assert "workflow custom version 1 cannot be loaded by this worker" in record.getMessage()


class SchedulerThread(threading.Thread):
    """One worker's scheduler on its own connection and event loop."""

    def __init__(self, url: str, nows: list[datetime], barrier: threading.Barrier) -> None:
        super().__init__(daemon=True)
        self.url, self.nows, self.barrier = url, nows, barrier
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._go())
        except BaseException as exc:  # a failing thread must not leave the others waiting
            self.error = exc
            self.barrier.abort()

    async def _go(self) -> None:
        async with Engine(self.url) as engine:
            scheduler = Scheduler(engine)
            for now in self.nows:
                self.barrier.wait()
                await scheduler.run_once(now)


async def race_schedulers(url: str, nows: list[datetime], workers: int) -> None:
    """``workers`` schedulers, each on its own connection, run a round at each of ``nows``
    together."""
    barrier = threading.Barrier(workers)
    threads = [SchedulerThread(url, nows, barrier) for _ in range(workers)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    assert [t.error for t in threads] == [None] * workers


async def test_many_workers_start_each_tick_exactly_once(engine: Engine) -> None:
    every = await push(engine, workflow_text("every", "*/5 * * * *", "all"))
    current = await push(engine, workflow_text("current", "*/5 * * * *", "none"))
    ticks = upcoming(every[0], current[1], 8)
    # Rounds that overlap: catch-ups of several ticks, repeats, and on-time ticks.
    nows = [ticks[0] + SECOND, ticks[3] + SECOND, ticks[3] + SECOND, ticks[7] + SECOND]
    await race_schedulers(engine.db_url, nows, 3)
    # (a tick between the two pushes is one more for "every" only)
    assert await fired(engine, "every") == iso_all(walk(every[0], every[1], ticks[7]))
    assert await fired(engine, "current") == iso_all([ticks[0], ticks[3], ticks[7]])
    states = await engine.store.schedule_states()
    assert {(s.workflow_name, s.last_tick) for s in states} == {
        ("every", ticks[7]),
        ("current", ticks[7]),
    }


async def test_real_workers_fire_an_every_second_schedule(
    db_url: str, registry: StepRegistry
) -> None:
    fast = WorkerOptions(concurrency=4, park_after=0.3, max_idle=0.05, max_duty_wait=0.1)
    async with Engine(db_url, registry=registry) as one, Engine(db_url, registry=registry) as two:
        await push(one, workflow_text("pulse", "* * * * * *", "none"))
        workers = [Worker(one, fast), Worker(two, fast)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        done: list[dict[str, Any]] = []
        for _ in range(500):
            docs = await one.list_executions(ExecutionQuery(workflow="pulse"))
            done = [d for d in docs if d["runtimeStatus"] == "Completed"]
            if len(done) >= 2:
                break
            await asyncio.sleep(0.02)
        for worker in workers:
            worker.stop()
        await asyncio.gather(*tasks)
        assert len(done) >= 2
        at = await fired(one, "pulse")
    assert len(at) == len(set(at))  # one execution per tick, whichever worker saw it first
    assert all(d["output"]["at"] == d["trigger"]["scheduledAt"] for d in done)


async def test_the_scheduled_report_example(engine: Engine) -> None:
    workflow = engine.load(REPO / "examples" / "scheduled_report.yaml")
    await engine.push(workflow)
    [(_, pushed_at)] = await engine.store.active_workflow_ids()
    [(_, tick)] = next_fire_times(workflow, pushed_at)
    assert tick is not None and tick.astimezone(ZoneInfo("Europe/Berlin")).hour == 9
    await Scheduler(engine).run_once(tick + timedelta(hours=3))  # late: catch_up latest
    [doc] = await engine.list_executions(ExecutionQuery(workflow="scheduled-report"))
    done = await engine.drive(doc["id"])
    assert done["output"] == {"summary": f"Good morning, sales: report for {iso_all([tick])[0]}"}


async def test_an_hourly_schedule_fires_both_passes_of_a_repeated_hour(engine: Engine) -> None:
    """Sydney's clocks go back at 16:00 UTC on 4 April 2027: 02:00 comes twice, and a
    worker looking every minute starts both (the second pass was once lost)."""
    text = workflow_text("syd", "0 * * * *", "none").replace(
        '"0 * * * *"', '"0 * * * *", timezone: Australia/Sydney'
    )
    await push(engine, text)
    scheduler = Scheduler(engine)
    now = datetime.fromisoformat("2027-04-03T14:30Z")
    while now <= datetime.fromisoformat("2027-04-03T17:30Z"):
        await scheduler.run_once(now)
        now += timedelta(minutes=1)
    assert await fired(engine, "syd") == [
        "2027-04-03T15:00:00.000Z",
        "2027-04-03T16:00:00.000Z",
        "2027-04-03T17:00:00.000Z",
    ]


async def test_a_schedule_stored_before_a_newer_rule_still_runs(
    db_url: str, registry: StepRegistry
) -> None:
    """Pushed when '*/10 * * * * *' was accepted: every process compiles the stored
    version again, and a rule added since must not stop it from firing."""
    async with Engine(db_url, registry=registry) as old:
        with stored_definitions():  # as the release before the rule pushed it
            await push(old, workflow_text("legacy", "*/10 * * * * *", "none"))
        with pytest.raises(DefinitionError, match="fires every second"):
            old.load_text(workflow_text("legacy", "*/10 * * * * *", "none"))
    async with Engine(db_url, registry=registry) as fresh:
        live = await fresh.live_workflows("schedules")
        assert [workflow.name for _, _, workflow in live] == ["legacy"]


# -- overlap: what a tick does while an earlier one's execution has not finished --------------


def overlapping(name: str, overlap: str, catch_up: str = "none") -> str:
    text = workflow_text(name, "*/5 * * * *", catch_up)
    return text.replace(f"catch_up: {catch_up},", f"catch_up: {catch_up}, overlap: {overlap},")


async def statuses(engine: Engine, name: str) -> dict[str, str]:
    """scheduledAt -> runtimeStatus of every execution the schedule started."""
    docs = await engine.list_executions(ExecutionQuery(workflow=name, limit=1000))
    return {d["trigger"]["scheduledAt"]: d["runtimeStatus"] for d in docs}


async def test_overlap_allow_is_the_default_and_starts_every_tick(engine: Engine) -> None:
    spec, pushed_at = await push(engine, workflow_text("allowed", "*/5 * * * *", "none"))
    assert spec.overlap == "allow"
    scheduler = Scheduler(engine)
    ticks = upcoming(spec, pushed_at, 3)
    for tick in ticks:  # none of them runs: each is still queued when the next comes
        await scheduler.run_once(tick + SECOND)
    assert await statuses(engine, "allowed") == dict.fromkeys(iso_all(ticks), "NotStarted")


async def test_overlap_skip_starts_nothing_while_the_previous_execution_is_unfinished(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    spec, pushed_at = await push(engine, overlapping("skipper", "skip"))
    t1, t2, t3, t4 = upcoming(spec, pushed_at, 4)
    scheduler = Scheduler(engine)
    await scheduler.run_once(t1 + SECOND)
    [first] = await engine.list_executions(ExecutionQuery(workflow="skipper"))
    with caplog.at_level(logging.INFO, logger="flowledger.worker.schedules"):
        await scheduler.run_once(t2 + SECOND)  # the first is still queued
        await scheduler.run_once(t2 + 2 * SECOND)  # dealt with: not skipped (or said) again
    assert await fired(engine, "skipper") == iso_all([t1])
    [said] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert said == (
        f"schedule trigger 1 of skipper: tick {iso_all([t2])[0]} skipped: {first['id']} "
        f"(tick {iso_all([t1])[0]}) not finished yet (overlap: skip)"
    )
    assert (await engine.drive(first["id"]))["runtimeStatus"] == "Completed"
    await scheduler.run_once(t3 + SECOND)  # the first has ended: this one starts
    assert await fired(engine, "skipper") == iso_all([t1, t3])
    await scheduler.run_once(t4 + SECOND)
    assert await fired(engine, "skipper") == iso_all([t1, t3])
    [state] = await engine.store.schedule_states()  # what workflows show says of it
    assert (state.skipped_ticks, state.last_skipped_tick) == (2, t4)


async def test_overlap_skip_counts_an_execution_waiting_for_a_person_as_unfinished(
    engine: Engine,
) -> None:
    text = overlapping("asking", "skip").replace(
        "sys.transform, input: {value: 1}", "sys.wait_for_input, input: {prompt: ok?}"
    )
    spec, pushed_at = await push(engine, text)
    t1, t2 = upcoming(spec, pushed_at, 2)
    scheduler = Scheduler(engine)
    await scheduler.run_once(t1 + SECOND)
    [first] = await engine.list_executions(ExecutionQuery(workflow="asking"))
    assert (await engine.drive(first["id"]))["runtimeStatus"] == "AwaitingUserInput"
    await scheduler.run_once(t2 + SECOND)
    assert await fired(engine, "asking") == iso_all([t1])


async def test_overlap_skip_applies_to_catch_up_ticks_too(engine: Engine) -> None:
    """catch_up: all after a restart: the oldest missed tick starts, the others find it
    unfinished and are skipped (as on time: one execution of the trigger at a time)."""
    spec, pushed_at = await push(engine, overlapping("backlog", "skip", catch_up="all"))
    ticks = upcoming(spec, pushed_at, 4)
    scheduler = Scheduler(engine)
    await scheduler.run_once(ticks[0] + SECOND)
    [first] = await engine.list_executions(ExecutionQuery(workflow="backlog"))
    await engine.drive(first["id"])
    await scheduler.run_once(ticks[3] + GRACE + SECOND)  # ticks 1..3 missed meanwhile
    assert await fired(engine, "backlog") == iso_all(ticks[:2])
    [state] = await engine.store.schedule_states()
    assert (state.skipped_ticks, state.last_skipped_tick) == (2, ticks[3])


async def test_overlap_skip_looks_only_at_its_own_trigger(engine: Engine) -> None:
    """Another trigger's, another workflow's unfinished executions do not make it skip,
    nor do those of a workflow whose name it begins (the key prefix is exact)."""
    text = overlapping("solo", "skip").replace(
        "triggers:\n", 'triggers:\n  - {type: schedule, cron: "*/5 * * * *", input: {who: b}}\n'
    )
    await push(engine, overlapping("solo_x", "allow"))
    workflow = engine.load_text(text, "solo.yaml")
    await engine.push(workflow)
    spec = workflow.triggers[2].spec
    assert isinstance(spec, ScheduleTrigger) and spec.overlap == "skip"
    live = dict(await engine.store.active_workflow_ids())
    t1, t2 = upcoming(spec, max(live.values()), 2)
    scheduler = Scheduler(engine)
    await scheduler.run_once(t1 + SECOND)
    docs = await engine.list_executions(ExecutionQuery(workflow="solo"))
    for doc in docs:
        if doc["trigger"]["arguments"] == {"who": "cron"}:  # the skip trigger's own: ended
            await engine.drive(doc["id"])
    await scheduler.run_once(t2 + SECOND)
    assert await statuses(engine, "solo_x") == dict.fromkeys(iso_all([t1, t2]), "NotStarted")
    docs = await engine.list_executions(ExecutionQuery(workflow="solo", limit=100))
    assert sorted(d["trigger"]["scheduledAt"] for d in docs) == iso_all([t1, t1, t2, t2])


async def test_overlap_cancel_previous_cancels_the_unfinished_then_starts(
    engine: Engine,
) -> None:
    spec, pushed_at = await push(engine, overlapping("replacer", "cancel_previous"))
    t1, t2 = upcoming(spec, pushed_at, 2)
    scheduler = Scheduler(engine)
    await scheduler.run_once(t1 + SECOND)
    [first] = await engine.list_executions(ExecutionQuery(workflow="replacer"))
    await scheduler.run_once(t2 + SECOND)
    await scheduler.run_once(t2 + 2 * SECOND)  # the same tick again: no second cancel
    assert await fired(engine, "replacer") == iso_all([t1, t2])
    [signal] = await engine.store.pending_signals(first["id"])
    assert signal["kind"] == "cancel"
    assert "overlap: cancel_previous" in str(signal["payload"])
    done = await engine.drive(first["id"])
    assert done["runtimeStatus"] == "Cancelled"
    assert (await statuses(engine, "replacer"))[iso_all([t2])[0]] == "NotStarted"


async def test_many_workers_skip_overlapping_ticks_and_start_each_tick_once(
    engine: Engine,
) -> None:
    spec, pushed_at = await push(engine, overlapping("crowd", "skip"))
    ticks = upcoming(spec, pushed_at, 3)
    nows = [tick + SECOND for tick in ticks]
    await race_schedulers(engine.db_url, nows, 3)
    assert await fired(engine, "crowd") == iso_all(ticks[:1])
