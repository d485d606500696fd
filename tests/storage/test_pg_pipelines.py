"""PostgreSQL's rounds in one round trip (storage.pgwrites): BEGIN, the fence, the writes
and COMMIT in one pipeline; a failed fence falls back to BatchWriter. And what a new
execution's insert does on PostgreSQL when its trigger key or id is taken."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest

from flowledger.errors import LeaseLostError
from flowledger.storage import Batch
from flowledger.storage.leasesql import SQLLeaseGroupStore
from flowledger.storage.postgres import PostgresStore
from tests.storage.conftest import T0, event_row, execution_row, new_execution, step_row

pytestmark = pytest.mark.postgresql

LEASE = timedelta(minutes=5)
GONE = timedelta(seconds=-1)


async def _owned(store: PostgresStore) -> tuple[str, int]:
    execution_id = await new_execution(store)
    epoch = await store.acquire_lease(execution_id, "w", LEASE)
    assert epoch is not None
    return execution_id, epoch


async def _taken_over(store: PostgresStore) -> tuple[str, int]:
    """An execution whose lease passed from owner a (epoch returned) to owner b."""
    execution_id = await new_execution(store)
    old = await store.acquire_lease(execution_id, "a", GONE)
    assert old is not None
    assert await store.acquire_lease(execution_id, "b", LEASE) is not None
    return execution_id, old


def _round(execution_id: str, epoch: int) -> Batch:
    step = step_row(execution_id)
    return Batch(
        execution_id,
        epoch,
        execution={"runtime_status": "InProgress", "event_seq": 2},
        insert_steps=[step],
        events=[event_row(execution_id, 1), event_row(execution_id, 2, kind="StepStarted")],
        step_logs=[{"execution_id": execution_id, "step_execution_id": step["id"],
                    "step_id": "a", "attempt": 1, "at": T0, "level": "INFO",
                    "message": '"hi"'}],
    )  # fmt: skip


async def _writer_transaction_status(store: PostgresStore) -> int:
    def status() -> int:
        driver = store.conn.connection.dbapi_connection
        assert isinstance(driver, psycopg.Connection)
        return int(driver.info.transaction_status)

    return await store._writer.run(status)


async def test_a_group_is_written_and_committed_by_its_pipeline(pg: PostgresStore) -> None:
    owned = [await _owned(pg) for _ in range(4)]
    await asyncio.gather(*(pg.commit(group=True, batch=_round(i, e)) for i, e in owned))
    for execution_id, _ in owned:
        row = await pg.get_execution(execution_id)
        assert row is not None and row["runtime_status"] == "InProgress"
        assert row["event_seq"] == 2
        assert len(await pg.get_step_executions(execution_id)) == 1
        assert [e["seq"] for e in await pg.get_events(execution_id)] == [1, 2]
    # The COMMIT went out in the pipeline: no transaction is left open on the writer.
    assert await _writer_transaction_status(pg) == psycopg.pq.TransactionStatus.IDLE


async def test_a_lone_round_under_a_lost_lease_is_refused(pg: PostgresStore) -> None:
    lost_id, old = await _taken_over(pg)
    with pytest.raises(LeaseLostError):
        await pg.commit(group=True, batch=_round(lost_id, old))
    assert await pg.get_step_executions(lost_id) == []
    assert await pg.get_events(lost_id) == []
    row = await pg.get_execution(lost_id)
    assert row is not None and row["runtime_status"] == "NotStarted"
    # The failed fence left the connection usable: the next round commits.
    good_id, epoch = await _owned(pg)
    await pg.commit(group=True, batch=_round(good_id, epoch))
    assert len(await pg.get_step_executions(good_id)) == 1


async def test_a_failed_fence_writes_nothing_of_the_lost_rounds_and_all_of_the_others(
    pg: PostgresStore,
) -> None:
    good = [await _owned(pg) for _ in range(3)]
    lost = [await _taken_over(pg) for _ in range(2)]
    results = await asyncio.gather(
        *(pg.commit(group=True, batch=_round(i, e)) for i, e in [*good, *lost]),
        return_exceptions=True,
    )
    assert results[:3] == [None, None, None]
    assert all(isinstance(r, LeaseLostError) for r in results[3:])
    for execution_id, _ in good:
        assert len(await pg.get_step_executions(execution_id)) == 1
        assert len(await pg.get_events(execution_id)) == 2
    for execution_id, _ in lost:
        assert await pg.get_step_executions(execution_id) == []
        assert await pg.get_events(execution_id) == []


async def test_a_used_trigger_key_answers_with_the_first_execution(pg: PostgresStore) -> None:
    first = execution_row(trigger_key="tick:1")
    again = execution_row(trigger_key="tick:1")
    assert await pg.create_execution(first, []) == first["id"]
    assert await pg.create_execution(again, [event_row(again["id"], 1)]) == first["id"]
    assert await pg.get_execution(again["id"]) is None
    assert await pg.get_events(again["id"]) == []
    # The refused insert was rolled back: the next one commits.
    assert await pg.create_execution(other := execution_row(), []) == other["id"]


async def test_a_start_asked_again_writes_nothing_and_answers_its_id(pg: PostgresStore) -> None:
    """The same start again (its lease group failed after the insert, and is asked again
    one request at a time: storage.leasegroup) leaves the first row as it was."""
    row = execution_row(correlation_id="first")
    await pg.create_execution(row, [])
    again = execution_row(id=row["id"], correlation_id="again")
    assert await pg.create_execution(again, []) == row["id"]
    stored = await pg.get_execution(row["id"])
    assert stored is not None and stored["correlation_id"] == "first"
    assert await pg.create_execution(other := execution_row(), []) == other["id"]


async def test_a_start_and_its_events_are_written_as_given(pg: PostgresStore) -> None:
    """The pipelined create (PostgresStore._create_many): what is read back is what was
    written, NULLs, integers and timestamps included."""
    row = execution_row()
    given = [event_row(row["id"], 1), event_row(row["id"], 2, kind="StepStarted")]
    given[1] |= {"step_id": "a", "attempt": 3, "detail": '{"x": 1}'}
    assert await pg.create_execution(row, given) == row["id"]
    stored = await pg.get_events(row["id"])
    assert [{k: e[k] for k in given[0]} for e in stored] == given
    assert (await pg.get_execution(row["id"]) or {})["correlation_id"] == row["correlation_id"]


async def test_a_plain_start_is_one_pipeline(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start without a trigger key never takes the general path (four round trips)."""

    def general(self: SQLLeaseGroupStore, works: object) -> list[str]:
        raise AssertionError("a plain start took the general path")

    monkeypatch.setattr(SQLLeaseGroupStore, "_create_many", general)
    rows = [execution_row() for _ in range(3)]
    answers = await asyncio.gather(*(pg.create_execution(r, [event_row(r["id"], 1)]) for r in rows))
    assert answers == [r["id"] for r in rows]
    for row in rows:
        assert len(await pg.get_events(row["id"])) == 1


async def test_starts_together_beside_one_asked_again_are_all_answered(
    pg: PostgresStore,
) -> None:
    """The pipeline aborts on the start asked again; the general path answers the group:
    the new ones are created, the old one is left as it was."""
    old = execution_row(correlation_id="first")
    await pg.create_execution(old, [event_row(old["id"], 1)])
    rows = [execution_row(), execution_row(id=old["id"], correlation_id="again"), execution_row()]
    answers = await asyncio.gather(*(pg.create_execution(r, [event_row(r["id"], 1)]) for r in rows))
    assert answers == [r["id"] for r in rows]
    assert (await pg.get_execution(old["id"]) or {})["correlation_id"] == "first"
    assert len(await pg.get_events(old["id"])) == 1
    for created in (rows[0], rows[2]):
        assert len(await pg.get_events(created["id"])) == 1


async def test_a_start_asked_again_with_its_events_writes_nothing_twice(
    pg: PostgresStore,
) -> None:
    row = execution_row()
    first = [event_row(row["id"], 1)]
    await pg.create_execution(row, first)
    again = execution_row(id=row["id"])
    assert await pg.create_execution(again, [event_row(row["id"], 1, kind="Other")]) == row["id"]
    assert [e["kind"] for e in await pg.get_events(row["id"])] == [first[0]["kind"]]


async def test_starts_together_beside_a_taken_trigger_key_are_all_answered(
    pg: PostgresStore,
) -> None:
    """One pipeline for the group: the start refused by its trigger key answers the
    holder, the others are created with their events."""
    holder = execution_row(trigger_key="tick:2")
    await pg.create_execution(holder, [])
    rows = [execution_row(), execution_row(trigger_key="tick:2"), execution_row()]
    answers = await asyncio.gather(*(pg.create_execution(r, [event_row(r["id"], 1)]) for r in rows))
    assert answers == [rows[0]["id"], holder["id"], rows[2]["id"]]
    assert await pg.get_events(rows[1]["id"]) == []
    for created in (rows[0], rows[2]):
        assert len(await pg.get_events(created["id"])) == 1
