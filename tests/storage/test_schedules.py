"""Schedule progress: a compare-and-set that exactly one of many racing workers wins; the
unfinished executions of one trigger's ticks, which its overlap policy looks for."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import event, insert

from flowledger.storage import open_store
from flowledger.storage.schedules import ScheduleState
from flowledger.storage.schema import executions
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import T0, execution_row, join_all

FIRST = ScheduleState("report", "5f0c1a2b3c4d5e6f", "*/5 * * * *", "Europe/Berlin", T0)


async def test_progress_is_created_once_then_moved_by_compare_and_set(store: SQLStore) -> None:
    assert await store.schedule_states() == []
    assert await store.save_schedule_state(FIRST, None)
    assert not await store.save_schedule_state(FIRST, None)  # someone else created it first
    second = replace(FIRST, last_tick=T0 + timedelta(minutes=5, microseconds=123))
    assert await store.save_schedule_state(second, FIRST)
    assert not await store.save_schedule_state(second, FIRST)  # stale: it moved on
    edited = replace(second, cron="0 9 * * *", timezone="UTC")
    assert not await store.save_schedule_state(edited, replace(second, cron="* * * * *"))
    assert await store.save_schedule_state(edited, second)
    [stored] = await store.schedule_states()
    assert stored == edited
    assert stored.last_tick.tzinfo is not None  # aware UTC, microseconds kept


async def test_triggers_of_one_workflow_keep_their_own_progress(store: SQLStore) -> None:
    other = replace(FIRST, trigger_id="5f0c1a2b3c4d5e6f-2", last_tick=T0 + timedelta(hours=1))
    elsewhere = replace(FIRST, workflow_name="other")
    for state in (FIRST, other, elsewhere):
        assert await store.save_schedule_state(state, None)
    stored = {(s.workflow_name, s.trigger_id): s for s in await store.schedule_states()}
    assert stored == {
        ("report", FIRST.trigger_id): FIRST,
        ("report", other.trigger_id): other,
        ("other", FIRST.trigger_id): elsewhere,
    }


async def test_the_progress_of_schedules_no_longer_live_is_forgotten(store: SQLStore) -> None:
    """Only the named workflow's, only those not kept; none kept: all of its."""
    other = replace(FIRST, trigger_id="5f0c1a2b3c4d5e6f-2")
    elsewhere = replace(FIRST, workflow_name="other")
    for state in (FIRST, other, elsewhere):
        assert await store.save_schedule_state(state, None)
    assert await store.forget_schedule_states("report", frozenset({FIRST.trigger_id})) == 1
    assert sorted(await store.schedule_states(), key=str) == sorted([FIRST, elsewhere], key=str)
    assert await store.forget_schedule_states("report", frozenset()) == 1
    assert await store.schedule_states() == [elsewhere]


async def test_of_many_racing_workers_exactly_one_moves_the_progress(
    db_url: str, store: SQLStore
) -> None:
    assert await store.save_schedule_state(FIRST, None)
    trials, racers = 20, 4
    barrier = threading.Barrier(racers)
    wins = [0] * racers
    errors: list[BaseException] = []

    def race(index: int) -> None:
        opened = open_store(db_url)
        loop = asyncio.new_event_loop()
        try:
            expected = FIRST
            for trial in range(trials):
                target = replace(FIRST, last_tick=T0 + timedelta(minutes=trial + 1))
                barrier.wait()
                if loop.run_until_complete(opened.save_schedule_state(target, expected)):
                    wins[index] += 1
                expected = target  # every racer saw the same state before the next trial
                barrier.wait()
        except BaseException as exc:  # a failing racer must not leave the others waiting
            errors.append(exc)
            barrier.abort()
        finally:
            loop.run_until_complete(opened.close())
            loop.close()

    threads = [threading.Thread(target=race, args=(i,), daemon=True) for i in range(racers)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(join_all, threads)
    assert errors == []
    assert sum(wins) == trials
    [stored] = await store.schedule_states()
    assert stored.last_tick == T0 + timedelta(minutes=trials)


async def test_the_unfinished_ticks_of_one_trigger_are_found_by_exact_key_prefix(
    store: SQLStore,
) -> None:
    """Only unfinished executions, of this workflow, whose key starts with the prefix
    exactly: not another trigger's (1 against 10), nor one LIKE would match ('_', case)."""

    def row(key: str, status: str = "InProgress", workflow: str = "my_wf") -> dict[str, object]:
        return execution_row(workflow_name=workflow, trigger_key=key, runtime_status=status)

    wanted = [
        row("schedule:my_wf:1:2026-01-01T00:00:00.000Z", "NotStarted"),
        row("schedule:my_wf:1:2026-01-01T01:00:00.000Z"),
        row("schedule:my_wf:1:2026-01-01T02:00:00.000Z", "AwaitingUserInput"),
    ]
    others = [
        row("schedule:my_wf:1:2025-12-31T23:00:00.000Z", "Completed"),
        row("schedule:my_wf:1:2025-12-31T22:00:00.000Z", "Cancelled"),
        row("schedule:my_wf:10:2026-01-01T00:00:00.000Z"),
        row("schedule:myXwf:1:2026-01-01T00:00:00.000Z", workflow="myXwf"),
        row("schedule:MY_WF:1:2026-01-01T00:00:00.000Z", workflow="MY_WF"),
        row("schedule:my_wf:2:2026-01-01T00:00:00.000Z"),
        row("entity:e1:my_wf"),
        row("child:x:0", workflow="my_wf"),
    ]
    with store.conn.begin():
        store.conn.execute(insert(executions), [*wanted, *others])
    found = await store.unfinished_ticks("my_wf", "schedule:my_wf:1:")
    assert sorted(found) == sorted((r["id"], r["trigger_key"]) for r in wanted)
    assert await store.unfinished_ticks("nothing", "schedule:nothing:0:") == []


async def test_the_unfinished_ticks_are_read_through_their_partial_index(
    store: SQLStore,
) -> None:
    """The statement the store sends, explained: SQLite uses a partial index only when the
    query repeats its condition, PostgreSQL when it can prove it."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(store._engine, "before_cursor_execute", record)
    try:
        await store.unfinished_ticks("my_wf", "schedule:my_wf:1:")
    finally:
        event.remove(store._engine, "before_cursor_execute", record)
    *settings, (query, parameters) = sent
    sqlite = store.conn.dialect.name == "sqlite"
    with store.reading() as conn:
        for statement, values in settings:
            conn.exec_driver_sql(statement, values)
        if not sqlite:  # an empty table: make PostgreSQL show whether it *can* use it
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        explain = "EXPLAIN QUERY PLAN" if sqlite else "EXPLAIN"
        plan = " ".join(
            str(line[-1]) for line in conn.exec_driver_sql(f"{explain} {query}", parameters)
        )
    assert "ix_executions_unfinished_schedule" in plan, plan
