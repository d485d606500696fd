"""Ownership on both databases: claims, leases, renewals, parking and the fencing token."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, timedelta, timezone

import pytest
from sqlalchemy import insert

from flowledger.errors import LeaseLostError
from flowledger.storage import Batch
from flowledger.storage.base import MOST_SKIPPED
from flowledger.storage.leasegroup import skip_params, skip_slots
from flowledger.storage.pgleases import claim_sql
from flowledger.storage.postgres import PostgresStore
from flowledger.storage.schema import executions
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import (
    T0,
    event_row,
    execution_row,
    new_execution,
    step_row,
    walks_in_order,
)

LEASE = timedelta(minutes=5)
GONE = timedelta(seconds=-1)  # a lease that expired the moment it was taken


async def claimed_ids(store: SQLStore, owner: str = "w") -> set[str]:
    return {i for i, _ in await store.claim_executions(owner, 100, LEASE)}


async def test_a_stale_epoch_writes_nothing(store: SQLStore) -> None:
    execution_id = await new_execution(store)
    old = await store.acquire_lease(execution_id, "a", GONE)
    new = await store.acquire_lease(execution_id, "b", LEASE)
    assert old is not None and new == old + 1
    stale = Batch(
        execution_id,
        old,
        execution={"runtime_status": "Completed", "event_seq": 1},
        insert_steps=[step_row(execution_id, status="Completed")],
        events=[event_row(execution_id, 1)],
    )
    with pytest.raises(LeaseLostError):
        await store.commit(stale)
    row = await store.get_execution(execution_id)
    assert row is not None and row["runtime_status"] == "NotStarted" and row["event_seq"] == 0
    assert await store.get_step_executions(execution_id) == []
    assert await store.get_events(execution_id) == []
    # The current owner's commit goes through.
    await store.commit(Batch(execution_id, new, execution={"runtime_status": "InProgress"}))
    row = await store.get_execution(execution_id)
    assert row is not None and row["runtime_status"] == "InProgress"


async def test_an_empty_batch_still_checks_the_fence(store: SQLStore) -> None:
    execution_id = await new_execution(store)
    old = await store.acquire_lease(execution_id, "a", GONE)
    assert old is not None
    await store.acquire_lease(execution_id, "b", LEASE)
    with pytest.raises(LeaseLostError):
        await store.commit(Batch(execution_id, old))


async def test_claim_takes_only_runnable_executions(store: SQLStore) -> None:
    now = await store.db_now()
    fresh = await new_execution(store)
    leased = await new_execution(store, runtime_status="InProgress")
    expired = await new_execution(store, runtime_status="InProgress")
    parked = await new_execution(store, runtime_status="InProgress")
    due = await new_execution(store, runtime_status="InProgress")
    terminal = {
        await new_execution(store, runtime_status=status)
        for status in ("Completed", "CompletedWithNoActionTaken", "Failed", "Cancelled")
    }
    waiting = await new_execution(store, runtime_status="AwaitingUserInput")
    assert await store.acquire_lease(leased, "other", LEASE)
    assert await store.acquire_lease(expired, "other", GONE)
    for execution_id, wake_at in ((parked, now + timedelta(hours=1)), (due, now - LEASE)):
        epoch = await store.acquire_lease(execution_id, "other", LEASE)
        assert epoch is not None
        await store.release_lease(execution_id, epoch, wake_at=wake_at)

    claimed = dict(await store.claim_executions("me", 100, LEASE))
    assert set(claimed) == {fresh, expired, due}
    assert not ({leased, parked, waiting} | terminal) & set(claimed)
    # A claim is a lease: nobody else gets them now, and the epoch moved on.
    assert await claimed_ids(store, "someone") == set()
    row = await store.get_execution(expired)
    assert row is not None and row["lease_owner"] == "me"
    assert row["lease_epoch"] == claimed[expired] == 2


async def test_claim_respects_the_limit_oldest_first(store: SQLStore) -> None:
    ids = [await new_execution(store, created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    assert [i for i, _ in await store.claim_executions("w", 2, LEASE)] == ids[:2]
    assert [i for i, _ in await store.claim_executions("w", 2, LEASE)] == ids[2:]


def claim_plan(store: SQLStore, skip: Sequence[str] = ()) -> str:
    """How the database would run a claim of 50 now, leaving out the versions in ``skip``:
    the claim's own SQL, explained (on PostgreSQL on the connection claims go through,
    with its session settings)."""
    slots = skip_slots(len(skip))
    if isinstance(store, PostgresStore):
        leases = store._lease_conn._connection()
        params = {"owner": "w", "lease": LEASE, "limit": 50, **skip_params(skip)}
        plan = leases.execute(f"EXPLAIN {claim_sql(slots)}", params)
        return " / ".join(str(line[0]) for line in plan)
    read = store._reads()[0]
    claim = store._skipping_claim(read, slots) if skip else store._lease_statements(read)[2]
    at = (T0 + timedelta(days=1)).replace(tzinfo=None).isoformat(" ")
    params = {"owner": "w", "expires": at, "now": at, "limit": 50, **skip_params(skip)}
    with store.conn.begin():
        plan = store.conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {claim}", params)
        return " / ".join(str(line[-1]) for line in plan)


async def test_a_claim_walks_past_nothing_but_what_runs(store: SQLStore) -> None:
    """A claim takes the oldest free executions from the two claim indexes, with or without
    statistics, stepping over the running ones only. Before, SQLite sorted every queued
    execution on each claim, PostgreSQL did too (right after a burst) or, once it had
    analyzed a long history, walked it from its oldest finished row; and a claim by status
    walked every parked execution and every one waiting for a person."""
    later = T0 + timedelta(hours=1)
    never = T0 + timedelta(days=36500)
    history = [
        execution_row(runtime_status="Completed", created_at=T0 + timedelta(seconds=i))
        for i in range(3000)
    ]
    parked = [
        execution_row(runtime_status=status, wake_at=never, created_at=T0 + timedelta(seconds=i))
        for i in range(2000)
        for status in ("InProgress", "AwaitingUserInput")
    ]
    running = [
        execution_row(runtime_status="InProgress", lease_owner="busy", lease_epoch=1,
                      lease_expires_at=never, created_at=later)
        for _ in range(5)
    ]  # fmt: skip
    queued = [
        execution_row(created_at=later + timedelta(seconds=i, microseconds=1)) for i in range(3000)
    ]
    # Its timer has come: older than every queued one, it goes first.
    due = [execution_row(runtime_status="InProgress", wake_at=T0, created_at=later)]
    # A burst that the database has no statistics of yet, then the same once analyzed.
    for rows in (history, parked, running, queued, due):
        with store.conn.begin():  # a list of rows takes its columns from its first row
            store.conn.execute(insert(executions), rows)
    claims = ("ix_executions_status", "ix_executions_in_progress", "ix_executions_waking")
    # The waiting ones are read up to now only, not all of them filtered (PostgreSQL's
    # clock_timestamp() is volatile: it cannot bound an index scan).
    bounded = ("wake_at <= statement_timestamp()", "ix_executions_waking (wake_at>? AND wake_at<?)")
    plan = claim_plan(store)
    assert walks_in_order(plan, *claims) and any(b in plan for b in bounded), plan
    with store.conn.begin():
        store.conn.exec_driver_sql("ANALYZE executions")
    plan = claim_plan(store)
    assert walks_in_order(plan, *claims) and any(b in plan for b in bounded), plan
    # Leaving out the versions a worker cannot run changes the condition, not the walk.
    for skip in (["elsewhere"], [f"elsewhere-{i}" for i in range(MOST_SKIPPED)]):
        plan = claim_plan(store, skip)
        assert walks_in_order(plan, *claims) and any(b in plan for b in bounded), plan
    claimed = [i for i, _ in await store.claim_executions("w", 50, LEASE)]
    assert claimed == [due[0]["id"]] + [row["id"] for row in queued[:49]]


async def test_a_claim_leaves_out_the_workflow_versions_it_is_told_to(store: SQLStore) -> None:
    """A worker that lacks a workflow's plugins claimed its executions all the same, and
    held them back from the workers that have them. Told which versions to leave out, a
    claim takes the others, oldest first, up to its limit."""
    elsewhere = [
        await new_execution(store, workflow_version_id=f"v{i % 3}", created_at=T0) for i in range(6)
    ]  # the oldest: a claim that took them would leave the rest
    due = T0 + timedelta(seconds=1)
    mine = [await new_execution(store, workflow_version_id="mine", created_at=due)]
    for status in ("InProgress", "AwaitingUserInput"):  # freed, and with input arrived
        for version in ("v1", "mine"):
            execution_id = await new_execution(store, runtime_status=status, created_at=due)
            epoch = await store.acquire_lease(execution_id, "other", LEASE)
            assert epoch is not None
            with store.conn.begin():  # its version, and its time come (a signal's wake)
                store.conn.execute(
                    executions.update()
                    .where(executions.c.id == execution_id)
                    .values(workflow_version_id=version, lease_owner=None, wake_at=T0)
                )
            (mine if version == "mine" else elsewhere).append(execution_id)
    skip = ["v0", "v1", "v2"]  # three: padded to four placeholders
    claimed = [i for i, _ in await store.claim_executions("w", 2, LEASE, skip=skip)]
    assert set(claimed) <= set(mine) and len(claimed) == 2
    claimed += [i for i, _ in await store.claim_executions("w", 10, LEASE, skip=skip)]
    assert sorted(claimed) == sorted(mine)
    assert await store.claim_executions("w", 10, LEASE, skip=skip) == []
    assert await claimed_ids(store) == set(elsewhere)  # nothing left out: everything
    with pytest.raises(ValueError, match="at most"):
        await store.claim_executions("w", 1, LEASE, skip=["v"] * (MOST_SKIPPED + 1))


def test_the_versions_left_out_take_a_few_sizes_of_sql() -> None:
    assert [skip_slots(n) for n in (0, 1, 2, 3, 4, 5, 33, MOST_SKIPPED)] == [
        0, 1, 2, 4, 4, 8, 64, MOST_SKIPPED
    ]  # fmt: skip
    assert skip_params(["a", "b", "c"]) == {"skip0": "a", "skip1": "b", "skip2": "c", "skip3": "c"}
    assert skip_params([]) == {}


async def test_renew_keeps_only_the_leases_still_held(store: SQLStore) -> None:
    kept, lost, released = [await new_execution(store) for _ in range(3)]
    held = dict(await store.claim_executions("me", 10, GONE))
    assert set(held) == {kept, lost, released}
    assert await store.acquire_lease(lost, "thief", LEASE)  # ours had expired
    await store.release_lease(released, held[released])
    assert await store.renew_leases("me", held, LEASE) == {kept}
    # Renewed: the lease no longer looks expired to other claimers.
    assert await claimed_ids(store, "other") == {released}
    assert await store.renew_leases("me", {}, LEASE) == set()


async def test_release_with_wake_at_parks_until_due(store: SQLStore) -> None:
    execution_id = await new_execution(store, runtime_status="InProgress")
    epoch = await store.acquire_lease(execution_id, "w", LEASE)
    assert epoch is not None
    # Any time zone in, UTC out: the same instant, to the microsecond.
    wake_at = (await store.db_now() + timedelta(hours=2, microseconds=7)).astimezone(
        timezone(timedelta(hours=-5))
    )
    await store.release_lease(execution_id, epoch, wake_at=wake_at)
    row = await store.get_execution(execution_id)
    assert row is not None and row["lease_owner"] is None
    assert row["wake_at"] == wake_at and row["wake_at"].tzinfo == UTC
    assert await claimed_ids(store) == set()
    # A stale epoch cannot release (or re-park) what another owner now holds.
    await store.release_lease(execution_id, epoch - 1, wake_at=None)
    row = await store.get_execution(execution_id)
    assert row is not None and row["wake_at"] == wake_at
    # acquire_lease (a direct resume, e.g. input arrived) takes it early and clears the timer.
    again = await store.acquire_lease(execution_id, "w", LEASE)
    assert again == epoch + 1
    row = await store.get_execution(execution_id)
    assert row is not None and row["wake_at"] is None


async def test_acquire_refuses_a_lease_someone_else_holds(store: SQLStore) -> None:
    execution_id = await new_execution(store)
    first = await store.acquire_lease(execution_id, "a", LEASE)
    assert first == 1
    assert await store.acquire_lease(execution_id, "b", LEASE) is None
    assert await store.acquire_lease(execution_id, "a", LEASE) == 2  # ours: renewed, new epoch
    assert await store.acquire_lease("no-such-execution", "a", LEASE) is None


async def test_db_now_is_aware_utc_and_moves_forward(store: SQLStore) -> None:
    first = await store.db_now()
    second = await store.db_now()
    assert first.tzinfo == UTC and second >= first


async def test_a_claim_answers_with_the_rows_as_it_left_them(store: SQLStore) -> None:
    ids = [await new_execution(store, created_at=T0 + timedelta(seconds=i)) for i in range(2)]
    rows = await store.claim_execution_rows("w", 10, LEASE)
    assert [row["id"] for row in rows] == ids
    for row in rows:
        # What a read returns now, with the new epoch: the worker needs no read of its own.
        assert row == await store.get_execution(row["id"])
        assert row["lease_owner"] == "w" and row["lease_epoch"] == 1
        assert row["created_at"].tzinfo is not None


async def test_a_released_lease_is_claimed_again_and_an_old_epoch_releases_nothing(
    store: SQLStore,
) -> None:
    ended, waiting = [
        await new_execution(store, created_at=T0 + timedelta(seconds=i)) for i in range(2)
    ]
    # Claims go oldest first: the one claimed here is ``ended``.
    ((claimed, epoch),) = await store.claim_executions("w", 1, LEASE)
    assert claimed == ended
    assert await store.claim_execution_rows("w", 0, LEASE) == []  # a limit of 0 claims none
    await store.release_lease_row(ended, epoch)
    rows = await store.claim_execution_rows("w", 5, LEASE)
    # The released one is claimable again (it is NotStarted here), so both come back.
    assert {row["id"] for row in rows} == {ended, waiting}
    again = {row["id"]: row["lease_epoch"] for row in rows}
    assert again[ended] == epoch + 1
    # A release naming an old epoch leaves the current lease alone.
    assert await store.release_lease_row(ended, epoch) is not None
    row = await store.get_execution(ended)
    assert row is not None and row["lease_owner"] == "w"


@pytest.mark.parametrize("reaches_another", [False, True])
async def test_a_round_that_leaves_the_execution_row_alone_is_fenced_too(
    store: SQLStore, reaches_another: bool
) -> None:
    # runtime.journal: a round that only moves steps writes no column of its execution;
    # its epoch is read (locked, on PostgreSQL) instead of matched by an UPDATE. With a
    # signal to another execution it takes the writer's general path on PostgreSQL.
    execution_id = await new_execution(store)
    other = await new_execution(store)
    old = await store.acquire_lease(execution_id, "a", GONE)
    new = await store.acquire_lease(execution_id, "b", LEASE)
    assert old is not None and new is not None

    def round_at(epoch: int) -> Batch:
        signals = [
            {"id": str(uuid.uuid4()), "execution_id": other, "kind": "cancel", "step_id": None,
             "payload": "{}", "created_by": "test", "created_at": T0, "consumed_at": None}
        ] if reaches_another else []  # fmt: skip
        return Batch(
            execution_id,
            epoch,
            insert_steps=[step_row(execution_id)],
            events=[event_row(execution_id, 1)],
            signals=signals,
        )

    with pytest.raises(LeaseLostError):
        await store.commit(round_at(old))
    assert await store.get_step_executions(execution_id) == []
    assert await store.get_events(execution_id) == []
    await store.commit(round_at(new))
    assert len(await store.get_step_executions(execution_id)) == 1
    assert await store.last_event_seq(execution_id) == 1
    row = await store.get_execution(execution_id)
    assert row is not None and row["event_seq"] == 0  # the row itself was left alone
    target = await store.get_execution(other)
    assert target is not None and target["signals_sent"] == (1 if reaches_another else 0)
