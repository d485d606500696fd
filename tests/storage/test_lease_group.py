"""Lease grouping (storage.leasegroup) on both databases: takes, releases and claims made
together share one store call, and each still gets the answer it would get alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from flowledger.errors import StorageError
from flowledger.storage import open_store
from flowledger.storage.leasegroup import LeaseAnswer, LeaseWork
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import event_row, execution_row, new_execution

LEASE = timedelta(minutes=5)
#: A lease no database can stamp (now + this is past any timestamp): its take fails.
UNSTAMPABLE = timedelta.max


def record_calls(store: SQLStore) -> list[list[LeaseWork]]:
    """Every store call the lease group makes, with the requests in it."""
    calls: list[list[LeaseWork]] = []
    group = store._lease_group
    apply = group._apply

    def recorded(works: list[LeaseWork]) -> list[LeaseAnswer]:
        calls.append(list(works))
        return apply(works)

    group._apply = recorded
    return calls


async def test_takes_made_together_share_one_call_and_each_gets_its_row(
    store: SQLStore,
) -> None:
    ids = [await new_execution(store) for _ in range(6)]
    calls = record_calls(store)
    rows = await asyncio.gather(*(store.acquire_lease_row(i, "me", LEASE) for i in ids))
    assert len(calls) == 1 and [w.take for w in calls[0]] == ids
    for execution_id, row in zip(ids, rows, strict=True):
        assert row is not None and row["id"] == execution_id
        assert row["lease_owner"] == "me" and row["lease_epoch"] == 1
        assert await store.get_execution(execution_id) == row  # what the database holds
    # Released together, each answering with its row as the release left it.
    calls.clear()
    released = await asyncio.gather(*(store.release_lease_row(i, 1) for i in ids))
    assert len(calls) == 1
    for execution_id, row in zip(ids, released, strict=True):
        assert row is not None and row["id"] == execution_id and row["lease_owner"] is None
        assert row["lease_expires_at"] is None and row["lease_epoch"] == 1


async def test_a_take_of_a_held_execution_answers_none_beside_the_others(
    store: SQLStore,
) -> None:
    held = await new_execution(store)
    assert await store.acquire_lease_row(held, "other", LEASE) is not None
    free = [await new_execution(store) for _ in range(3)]
    calls = record_calls(store)
    rows = await asyncio.gather(
        *(store.acquire_lease_row(i, "me", LEASE) for i in [free[0], held, *free[1:]])
    )
    assert len(calls) == 1
    assert rows[1] is None
    assert all(r is not None and r["lease_owner"] == "me" for r in [rows[0], *rows[2:]])
    still = await store.get_execution(held)
    assert still is not None and still["lease_owner"] == "other" and still["lease_epoch"] == 1


async def test_two_takes_of_one_execution_never_share_a_group(store: SQLStore) -> None:
    execution_id = await new_execution(store)
    calls = record_calls(store)
    a, b = await asyncio.gather(
        store.acquire_lease_row(execution_id, "a", LEASE),
        store.acquire_lease_row(execution_id, "b", LEASE),
    )
    # One group each, in order: "a" took it, so "b" (another owner) did not.
    assert [[w.take for w in call] for call in calls] == [[execution_id], [execution_id]]
    assert a is not None and a["lease_owner"] == "a" and a["lease_epoch"] == 1
    assert b is None


async def test_a_failing_request_fails_alone_and_its_neighbours_get_their_answers(
    store: SQLStore,
) -> None:
    good = [await new_execution(store) for _ in range(4)]
    bad = await new_execution(store)
    queued = await new_execution(store)
    calls = record_calls(store)
    outcomes: list[Any] = await asyncio.gather(
        store.acquire_lease_row(good[0], "me", LEASE),
        store.acquire_lease_row(bad, "me", UNSTAMPABLE),
        *(store.acquire_lease_row(i, "me", LEASE) for i in good[1:]),
        store.claim_execution_rows("worker", 10, LEASE),  # a worker's turn, in the same group
        return_exceptions=True,
    )
    # The group failed as a whole, then each request was asked alone, in order.
    assert len(calls[0]) == 6 and [len(c) for c in calls[1:]] == [1] * 6
    assert isinstance(outcomes[1], StorageError)
    for execution_id, row in zip(good, [outcomes[0], *outcomes[2:5]], strict=True):
        assert isinstance(row, dict) and row["id"] == execution_id and row["lease_epoch"] == 1
        assert row["lease_owner"] == "me"
    # The failed take wrote nothing, so the worker's claim could take it (and the other
    # free one), and none of those the takes hold.
    assert {r["id"] for r in outcomes[5]} == {bad, queued}
    for row in outcomes[5]:
        assert row["lease_owner"] == "worker" and row["lease_epoch"] == 1


async def test_a_release_and_a_claim_asked_together_share_one_call(store: SQLStore) -> None:
    ended = await new_execution(store, runtime_status="Completed")  # not claimable
    taken = await store.acquire_lease_row(ended, "w", LEASE)
    assert taken is not None and taken["lease_epoch"] == 1
    waiting = await new_execution(store)
    calls = record_calls(store)
    released, claimed = await asyncio.gather(
        store.release_lease_row(ended, 1), store.claim_execution_rows("w", 5, LEASE)
    )
    assert len(calls) == 1
    assert [r["id"] for r in claimed] == [waiting]
    assert released is not None and released["lease_owner"] is None
    assert released == await store.get_execution(ended)


@pytest.mark.parametrize("size", [1, 40])
async def test_a_group_answers_in_the_order_asked(store: SQLStore, size: int) -> None:
    ids = [await new_execution(store) for _ in range(size)]
    rows = await asyncio.gather(*(store.acquire_lease_row(i, "me", LEASE) for i in ids))
    assert [r["id"] if r else None for r in rows] == ids


async def test_starts_made_together_share_one_call_and_a_bad_one_fails_alone(
    store: SQLStore,
) -> None:
    rows = [execution_row() for _ in range(5)]
    bad = execution_row(workflow_name=None)  # NOT NULL: the database refuses it
    calls = record_calls(store)
    outcomes: list[Any] = await asyncio.gather(
        *(store.create_execution(row, [event_row(row["id"], 1)]) for row in rows[:2]),
        store.create_execution(bad, []),
        *(store.create_execution(row, [event_row(row["id"], 1)]) for row in rows[2:]),
        return_exceptions=True,
    )
    assert len(calls[0]) == 6 and [len(c) for c in calls[1:]] == [1] * 6
    assert isinstance(outcomes[2], StorageError)
    assert [*outcomes[:2], *outcomes[3:]] == [row["id"] for row in rows]
    for row in rows:
        stored = await store.get_execution(row["id"])
        assert stored is not None and stored["workflow_name"] == "wf"
        assert [e["seq"] for e in await store.get_events(row["id"])] == [1]
    assert await store.get_execution(bad["id"]) is None


async def test_starts_with_one_trigger_key_made_together_create_one_execution(
    store: SQLStore,
) -> None:
    rows = [execution_row(trigger_key="tick-1") for _ in range(4)]
    calls = record_calls(store)
    ids = await asyncio.gather(
        *(store.create_execution(row, [event_row(row["id"], 1)]) for row in rows)
    )
    assert len(calls) == 1
    assert ids == [rows[0]["id"]] * 4  # the first one asked won; the others found it
    assert [await store.get_execution(row["id"]) is None for row in rows] == [
        False, True, True, True
    ]  # fmt: skip
    assert len(await store.get_events(rows[0]["id"])) == 1


async def test_requests_to_a_closed_store_fail_rather_than_wait(db_url: str) -> None:
    store = open_store(db_url)
    await store.initialize()
    execution_id = await new_execution(store)
    await store.close()
    for _ in range(2):  # the first failure leaves the group free for the next request
        with pytest.raises(StorageError, match="closed"):
            await asyncio.wait_for(store.acquire_lease_row(execution_id, "me", LEASE), 30)
