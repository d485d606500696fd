"""PostgreSQL's rounds from the event loop (storage.pgrounds): a group in one transaction
on a connection of its own, and a writer that gets over a lost lease, a lost connection,
a cancelled caller and a new loop. The writer lane's own pipeline, and what a failed
fence writes: tests/storage/test_pg_pipelines.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flowledger.errors import LeaseLostError
from flowledger.storage import Batch
from flowledger.storage.groupcommit import GroupCommitter
from flowledger.storage.postgres import PostgresStore
from tests.storage.conftest import admin, backends, event_row, new_execution, none_left, step_row

pytestmark = pytest.mark.postgresql

LEASE = timedelta(minutes=5)


def _rounds_backends(url: str) -> list[int]:
    return backends(url, "flowledger-rounds")


def _none_left(url: str) -> bool:
    return none_left(url, "flowledger-rounds")


async def _owned(store: PostgresStore, owner: str = "w") -> tuple[str, int]:
    execution_id = await new_execution(store)
    epoch = await store.acquire_lease(execution_id, owner, LEASE)
    assert epoch is not None
    return execution_id, epoch


def _round(execution_id: str, epoch: int) -> Batch:
    return Batch(
        execution_id,
        epoch,
        execution={"runtime_status": "InProgress", "event_seq": 2},
        insert_steps=[step_row(execution_id)],
        events=[event_row(execution_id, 1), event_row(execution_id, 2, kind="StepStarted")],
    )


def _no_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    def lane(self: GroupCommitter, batches: object) -> list[BaseException | None]:
        raise AssertionError("the group took the writer lane")

    monkeypatch.setattr(GroupCommitter, "_write_group", lane)
    monkeypatch.setattr(GroupCommitter, "_transaction", lane)


async def _written(store: PostgresStore, execution_id: str) -> bool:
    return len(await store.get_step_executions(execution_id)) == 1


async def test_a_group_commits_from_the_event_loop_in_one_transaction(
    pg: PostgresStore, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_lane(monkeypatch)
    owned = [await _owned(pg) for _ in range(4)]
    await asyncio.gather(*(pg.commit(_round(i, e), group=True) for i, e in owned))
    ids = [i for i, _ in owned]
    with admin(pg_url) as conn:
        xmins = conn.execute(
            "SELECT DISTINCT xmin::text FROM step_executions WHERE execution_id = ANY(%s)",
            (ids,),
        ).fetchall()
        statuses = conn.execute(
            "SELECT DISTINCT runtime_status FROM executions WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    assert len(xmins) == 1
    assert statuses == [("InProgress",)]
    for execution_id in ids:
        assert [e["seq"] for e in await pg.get_events(execution_id)] == [1, 2]
    assert len(_rounds_backends(pg_url)) == 1


async def test_a_lone_round_goes_from_the_event_loop_too(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_lane(monkeypatch)
    execution_id, epoch = await _owned(pg)
    await pg.commit(_round(execution_id, epoch))
    assert await _written(pg, execution_id)


async def test_a_lost_lease_refuses_its_round_and_commits_the_others(pg: PostgresStore) -> None:
    """The fence fails the whole message; the writer lane then tells the lost round
    from the others."""
    good = [await _owned(pg) for _ in range(2)]
    lost_id, old = await _owned(pg, owner="a")
    assert await pg.acquire_lease(lost_id, "b", LEASE, steal_from="a") is not None
    results = await asyncio.gather(
        *(pg.commit(_round(i, e), group=True) for i, e in [*good, (lost_id, old)]),
        return_exceptions=True,
    )
    assert results[:2] == [None, None]
    assert isinstance(results[2], LeaseLostError)
    assert [await _written(pg, i) for i, _ in good] == [True, True]
    assert await pg.get_step_executions(lost_id) == []
    # The refused message left the connection usable: the next group goes on it.
    before = _rounds_backends(pg.url)
    again, epoch = await _owned(pg)
    await pg.commit(_round(again, epoch), group=True)
    assert await _written(pg, again)
    assert _rounds_backends(pg.url) == before


async def test_a_round_after_its_connection_was_killed_commits(
    pg: PostgresStore, pg_url: str
) -> None:
    first, epoch = await _owned(pg)
    await pg.commit(_round(first, epoch))
    with admin(pg_url) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'flowledger-rounds' AND datname = current_database()"
        )
    assert _none_left(pg_url)
    # The first round after it finds the connection gone and takes the writer lane; the
    # next one opens a new connection.
    for _ in range(2):
        execution_id, epoch = await _owned(pg)
        await pg.commit(_round(execution_id, epoch))
        assert await _written(pg, execution_id)
    assert len(_rounds_backends(pg_url)) == 1


async def test_a_cancelled_caller_leaves_the_writer_usable(pg: PostgresStore) -> None:
    """Its round still commits with its group (as one handed to the lane would), and the
    next round is written on the same connection."""
    gone, epoch = await _owned(pg)
    caller = asyncio.create_task(pg.commit(_round(gone, epoch), group=True))
    await asyncio.sleep(0)  # the caller has queued its round and the flush is scheduled
    await asyncio.sleep(0)  # the group's task began
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    after, epoch = await _owned(pg)
    await pg.commit(_round(after, epoch), group=True)
    assert await _written(pg, after)
    assert await _written(pg, gone)


def test_a_store_used_from_a_new_event_loop_reconnects(pg_url: str) -> None:
    """An asyncio connection belongs to the loop that opened it: a later loop gets its own,
    and closing the store from it leaves no connection behind."""
    store = PostgresStore(pg_url)
    made: list[str] = []

    async def first() -> None:
        await store.initialize()
        execution_id, epoch = await _owned(store)
        await store.commit(_round(execution_id, epoch))
        made.append(execution_id)

    async def second() -> None:
        try:
            execution_id, epoch = await _owned(store)
            await store.commit(_round(execution_id, epoch))
            made.append(execution_id)
            assert _rounds_backends(pg_url) not in ([], [before])  # a connection of its own
        finally:
            await store.close()

    asyncio.run(first())
    (before,) = _rounds_backends(pg_url)
    asyncio.run(second())
    with admin(pg_url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM step_executions WHERE execution_id = ANY(%s)", (made,)
        ).fetchone()
    assert found == (2,)
    assert _none_left(pg_url)
