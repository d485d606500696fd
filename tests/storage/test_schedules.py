"""Schedule progress: a compare-and-set that exactly one of many racing workers wins."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import timedelta

from flowledger.storage import open_store
from flowledger.storage.schedules import ScheduleState
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import T0, join_all

FIRST = ScheduleState("report", 1, "*/5 * * * *", "Europe/Berlin", T0)


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
    other = replace(FIRST, trigger_index=2, last_tick=T0 + timedelta(hours=1))
    elsewhere = replace(FIRST, workflow_name="other")
    for state in (FIRST, other, elsewhere):
        assert await store.save_schedule_state(state, None)
    stored = {(s.workflow_name, s.trigger_index): s for s in await store.schedule_states()}
    assert stored == {("report", 1): FIRST, ("report", 2): other, ("other", 1): elsewhere}


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
