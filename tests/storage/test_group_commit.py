"""Group commit: rounds of several executions in one transaction, each still standing alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flowledger.errors import LeaseLostError, StorageError
from flowledger.storage import Batch
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import event_row, leased_execution, new_execution, step_row

LEASE = timedelta(minutes=5)
GONE = timedelta(seconds=-1)


async def _owned(store: SQLStore) -> tuple[str, int]:
    return await leased_execution(store, "w", LEASE)


def _round(execution_id: str, epoch: int, **steps: object) -> Batch:
    return Batch(
        execution_id,
        epoch,
        execution={"runtime_status": "InProgress", "event_seq": 1},
        insert_steps=[step_row(execution_id, **steps)],
        events=[event_row(execution_id, 1)],
    )


async def test_concurrent_rounds_commit_together(store: SQLStore) -> None:
    owned = [await _owned(store) for _ in range(5)]
    await asyncio.gather(*(store.commit(group=True, batch=_round(i, e)) for i, e in owned))
    for execution_id, _ in owned:
        row = await store.get_execution(execution_id)
        assert row is not None and row["runtime_status"] == "InProgress"
        assert len(await store.get_step_executions(execution_id)) == 1
        assert len(await store.get_events(execution_id)) == 1


async def test_a_stale_round_is_refused_while_the_others_commit(store: SQLStore) -> None:
    good = [await _owned(store) for _ in range(3)]
    lost_id = await new_execution(store)
    old = await store.acquire_lease(lost_id, "a", GONE)
    assert old is not None
    await store.acquire_lease(lost_id, "b", LEASE)
    results = await asyncio.gather(
        *(store.commit(group=True, batch=_round(i, e)) for i, e in good),
        store.commit(group=True, batch=_round(lost_id, old)),
        return_exceptions=True,
    )
    assert results[:3] == [None, None, None]
    assert isinstance(results[3], LeaseLostError)
    assert await store.get_step_executions(lost_id) == []
    for execution_id, _ in good:
        assert len(await store.get_step_executions(execution_id)) == 1


async def test_a_double_completion_in_a_group_blames_only_its_round(store: SQLStore) -> None:
    dup_id, dup_epoch = await _owned(store)
    await store.commit(
        Batch(dup_id, dup_epoch, insert_steps=[step_row(dup_id, status="Completed")])
    )
    good = [await _owned(store) for _ in range(3)]
    results = await asyncio.gather(
        *(store.commit(group=True, batch=_round(i, e, status="Completed")) for i, e in good),
        store.commit(group=True, batch=_round(dup_id, dup_epoch, status="Completed", attempt=2)),
        return_exceptions=True,
    )
    assert results[:3] == [None, None, None]
    assert isinstance(results[3], StorageError) and "record a step twice" in str(results[3])
    assert len(await store.get_step_executions(dup_id)) == 1
    for execution_id, _ in good:
        assert len(await store.get_step_executions(execution_id)) == 1


@pytest.mark.parametrize("size", [1, 7])
async def test_a_cancelled_waiter_does_not_break_the_group(store: SQLStore, size: int) -> None:
    owned = [await _owned(store) for _ in range(size)]
    tasks = [asyncio.create_task(store.commit(group=True, batch=_round(i, e))) for i, e in owned]
    tasks[0].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # Cancelling the wait does not unwrite the round: it was committed with the group.
    for execution_id, _ in owned[1:]:
        assert len(await store.get_step_executions(execution_id)) == 1


@pytest.mark.parametrize("size", [1, 3])
async def test_a_round_the_driver_cannot_take_fails_as_raised(store: SQLStore, size: int) -> None:
    """A value no column takes is a bug upstream, to be seen with its traceback: the group
    said it as StorageError ("could not commit"), which the runtime reports in a line as
    the database's condition (runtime.leases.database_trouble)."""
    owned = [await _owned(store) for _ in range(size)]
    results = await asyncio.gather(
        *(store.commit(group=True, batch=_round(i, e, status=object())) for i, e in owned),
        return_exceptions=True,
    )
    for outcome in results:
        assert isinstance(outcome, Exception) and not isinstance(outcome, StorageError), outcome
    execution_id, epoch = owned[0]
    assert await store.get_step_executions(execution_id) == []  # nothing of it written
    await store.commit(group=True, batch=_round(execution_id, epoch))  # the store goes on
    assert len(await store.get_step_executions(execution_id)) == 1
