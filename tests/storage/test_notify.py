"""Idle workers: PostgreSQL wakes them with LISTEN/NOTIFY; SQLite wakes those of the
process that made the work, and lets the others poll. An engine's start wakes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from flowledger import Engine
from flowledger.runtime.creation import Lineage
from flowledger.storage import Store, open_store
from flowledger.storage.postgres import PostgresStore
from flowledger.storage.sql import SQLStore

#: Far longer than any healthy wake-up; only reached when a notification was lost.
PATIENCE = 20.0


async def assert_wakes(store: Store, act: Callable[[], Awaitable[object]], what: str) -> None:
    """``act`` ends the wait of an idle worker on ``store`` (within PATIENCE)."""
    await store.wait_for_work(0)  # subscribed (PostgreSQL), nothing left over from before
    waiting = asyncio.ensure_future(store.wait_for_work(600))
    await asyncio.sleep(0.05)  # most likely already waiting; either way it must wake
    await act()
    await asyncio.wait({waiting}, timeout=PATIENCE)
    assert waiting.done(), f"{what} did not wake the idle workers"


async def test_a_wait_without_news_returns_after_its_timeout(store: SQLStore) -> None:
    waiting = asyncio.ensure_future(store.wait_for_work(0.05))
    await asyncio.wait({waiting}, timeout=PATIENCE)
    assert waiting.done() and waiting.exception() is None
    await store.notify_work()  # nobody listening: harmless on both


async def test_work_made_in_this_process_ends_a_wait(store: SQLStore) -> None:
    await assert_wakes(store, store.notify_work, "work made in this process")


async def test_work_made_while_nobody_waits_ends_the_next_wait(store: SQLStore) -> None:
    await store.wait_for_work(0)
    await store.notify_work()  # while the worker claims, say
    woken = asyncio.ensure_future(store.wait_for_work(600))
    await asyncio.wait({woken}, timeout=PATIENCE)
    assert woken.done(), "work made between two waits was lost"


async def test_a_start_wakes_idle_workers_and_a_held_one_does_not(db_url: str) -> None:
    async with Engine(db_url) as engine:
        workflow = engine.load_text("name: w\nsteps: [{id: a, type: sys.no_action}]\n")
        await engine.store.wait_for_work(0)
        await engine.start(workflow, hold=True)  # this process drives it: nobody to wake
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(engine.store.wait_for_work(600), 0.3)
        await assert_wakes(engine.store, lambda: engine.start(workflow), "a start")


async def test_keyed_starts_and_reruns_wake_idle_workers(db_url: str) -> None:
    # Their creations take the store's other paths (a schedule tick, an entity event or a
    # job run's item is a keyed start; a rerun copies steps): each wakes the workers too.
    async with Engine(db_url) as engine:
        two = engine.load_text(
            "name: two\nsteps:\n  - {id: a, type: sys.no_action}\n"
            "  - {id: b, type: sys.no_action, after: [a]}\n"
        )
        done = await engine.run(two)
        keyed = Lineage(trigger_key="tick:1")
        await assert_wakes(engine.store, lambda: engine.start(two, lineage=keyed), "a keyed start")
        await assert_wakes(engine.store, lambda: engine.rerun(done["id"], "b"), "a rerun")


async def test_an_input_and_a_cancel_wake_idle_workers(db_url: str) -> None:
    # Their signal's own write wakes the workers (no NOTIFY transaction after it).
    async with Engine(db_url) as engine:
        ask = engine.load_text(
            "name: ask\nsteps: [{id: approve, type: sys.wait_for_input, input: {prompt: ok?}}]\n"
        )
        first, second = [(await engine.run(ask))["id"] for _ in range(2)]
        await assert_wakes(
            engine.store, lambda: engine.submit_input(first, "approve", {}), "an input"
        )
        await assert_wakes(engine.store, lambda: engine.cancel(second, reason="gone"), "a cancel")


async def test_a_start_in_another_process_ends_a_sqlite_wait(tmp_path: Path) -> None:
    # Two engines on one file stand for two processes: neither's own signal reaches the
    # other; the waiting one sees the other's commit (PRAGMA data_version).
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with Engine(url) as worker_side, Engine(url) as starter:
        workflow = starter.load_text("name: w\nsteps: [{id: a, type: sys.no_action}]\n")
        await worker_side.store.claim_execution_rows(worker_side.owner, 1, timedelta(seconds=30))
        await worker_side.store.wait_for_work(0.1)  # an idle look: nothing new
        waiting = asyncio.ensure_future(worker_side.store.wait_for_work(600))
        # A commit that leaves nothing to claim (a start the starter drives itself) is
        # no news: the wait goes on.
        await starter.start(workflow, hold=True)
        await asyncio.wait({waiting}, timeout=0.5)
        assert not waiting.done(), "a commit with nothing to claim ended the wait"
        await starter.start(workflow)
        await asyncio.wait({waiting}, timeout=PATIENCE)
        assert waiting.done(), "a commit by another process never ended the wait"
        claimed = await worker_side.store.claim_execution_rows(
            worker_side.owner, 1, timedelta(seconds=30)
        )
        assert len(claimed) == 1


async def test_work_of_the_versions_it_skips_is_no_news_to_a_sqlite_wait(tmp_path: Path) -> None:
    """A worker that lacks a workflow's plugins leaves it out of its claims; while such an
    execution stayed queued, every commit of another process woke it to claim (a write)
    and find nothing, up to twenty times a second."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with Engine(url) as worker_side, Engine(url) as starter:
        workflow = starter.load_text("name: w\nsteps: [{id: a, type: sys.no_action}]\n")
        skip = [(await starter.register(workflow)).id]
        await starter.start(workflow)  # queued, of a version the worker side cannot run
        await worker_side.store.wait_for_work(0.1, skip=skip)  # an idle look: the first
        waiting = asyncio.ensure_future(worker_side.store.wait_for_work(600, skip=skip))
        await starter.start(workflow)
        await asyncio.wait({waiting}, timeout=0.5)
        assert not waiting.done(), "work it leaves to others ended the wait"
        other = starter.load_text("name: other\nsteps: [{id: a, type: sys.no_action}]\n")
        await starter.start(other)
        await asyncio.wait({waiting}, timeout=PATIENCE)
        assert waiting.done(), "work it can run did not end the wait"


@pytest.fixture
async def pair(pg_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    waiter, notifier = open_store(pg_url), open_store(pg_url)
    assert isinstance(waiter, PostgresStore) and isinstance(notifier, PostgresStore)
    yield waiter, notifier
    await waiter.close()
    await notifier.close()


@pytest.mark.postgresql
async def test_notify_from_another_connection_wakes_a_waiting_worker(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    waiter, notifier = pair
    await waiter.wait_for_work(0)  # subscribe
    waiting = asyncio.create_task(waiter.wait_for_work(600))
    await asyncio.sleep(0.05)  # most likely already waiting; either way it must wake
    await notifier.notify_work()
    await asyncio.wait({waiting}, timeout=PATIENCE)
    assert waiting.done(), "the notification never woke the waiting worker"


@pytest.mark.postgresql
async def test_a_notification_sent_between_waits_is_not_lost(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    waiter, notifier = pair
    await waiter.wait_for_work(0)
    for _ in range(3):  # a burst, sent while nobody waits
        await notifier.notify_work()
    woken = asyncio.ensure_future(waiter.wait_for_work(600))
    await asyncio.wait({woken}, timeout=PATIENCE)
    assert woken.done(), "a notification sent between waits was lost"
    # (Whether the burst also ends the next wait depends on when its packets arrive: an
    # extra wake-up costs one empty claim, so it is not asserted either way.)


@pytest.mark.postgresql
async def test_an_idle_wait_sends_no_queries(
    pair: tuple[PostgresStore, PostgresStore], pg_url: str
) -> None:
    waiter, _ = pair
    await waiter.wait_for_work(0)

    async def listener_activity() -> list[tuple[object, ...]]:
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            cursor = await conn.execute(
                "SELECT query_start, query FROM pg_stat_activity"
                " WHERE application_name = 'flowledger-listener'"
                # Only this test's database: the cluster is shared with the other tests.
                " AND datname = current_database()"
            )
            return await cursor.fetchall()

    before = await listener_activity()
    await waiter.wait_for_work(0.3)
    await waiter.wait_for_work(0.3)
    assert len(before) == 1 and before == await listener_activity()


@pytest.mark.postgresql
async def test_cancelled_waits_leave_the_listener_usable(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    waiter, notifier = pair
    for i in range(30):  # cancel at different points: connecting, LISTEN, waiting
        task = asyncio.create_task(waiter.wait_for_work(600))
        for _ in range(i % 6):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await waiter.wait_for_work(0)  # subscribed again, if the cancel came before LISTEN
        await notifier.notify_work()
        await asyncio.wait_for(waiter.wait_for_work(600), PATIENCE)
