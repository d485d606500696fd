"""PostgreSQL's starts from the event loop (storage.pgstarts): grouped by tick, durable,
and a writer that gets over a lost connection, a cancelled caller and a new loop. What a
start does when its trigger key or id is taken: tests/storage/test_pg_pipelines.py."""

from __future__ import annotations

import asyncio

import pytest

from flowledger.storage.leasesql import SQLLeaseGroupStore
from flowledger.storage.postgres import PostgresStore
from tests.storage.conftest import admin, backends, event_row, execution_row, none_left

pytestmark = pytest.mark.postgresql


def _starts_backends(url: str) -> list[int]:
    return backends(url, "flowledger-starts")


def _none_left(url: str) -> bool:
    return none_left(url, "flowledger-starts")


async def test_starts_asked_together_share_one_transaction(pg: PostgresStore, pg_url: str) -> None:
    rows = [execution_row() for _ in range(5)]
    answers = await asyncio.gather(*(pg.create_execution(r, [event_row(r["id"], 1)]) for r in rows))
    assert answers == [r["id"] for r in rows]
    with admin(pg_url) as conn:
        xmins = conn.execute(
            "SELECT DISTINCT xmin::text FROM executions WHERE id = ANY(%s)",
            ([r["id"] for r in rows],),
        ).fetchall()
    assert len(xmins) == 1
    assert len(_starts_backends(pg_url)) == 1


async def test_values_reach_the_database_as_given(
    pg: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values are bound on this side (one message of many statements): quotes,
    backslashes, placeholders and statement separators in them are data, not SQL."""

    def general(self: SQLLeaseGroupStore, works: object) -> list[str]:
        raise AssertionError("the start took the general path")

    monkeypatch.setattr(SQLLeaseGroupStore, "_create_many", general)
    odd = "it's a \\ test %s %(x)s $1 ; DROP TABLE executions; -- \u00e9\u2603 \U0001f600"
    row = execution_row(correlation_id=odd)
    event = event_row(row["id"], 1, detail='{"text": "' + odd.replace("\\", "\\\\") + '"}')
    assert await pg.create_execution(row, [event]) == row["id"]
    assert (await pg.get_execution(row["id"]) or {})["correlation_id"] == odd
    (stored,) = await pg.get_events(row["id"])
    assert stored["detail"] == event["detail"]


async def test_a_start_after_its_connection_was_killed_commits(
    pg: PostgresStore, pg_url: str
) -> None:
    first = execution_row()
    await pg.create_execution(first, [event_row(first["id"], 1)])
    with admin(pg_url) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'flowledger-starts' AND datname = current_database()"
        )
    assert _none_left(pg_url)
    # The first start after it finds the connection gone and takes the general path; the
    # next one opens a new connection.
    for row in (execution_row(), execution_row()):
        assert await pg.create_execution(row, [event_row(row["id"], 1)]) == row["id"]
        assert len(await pg.get_events(row["id"])) == 1
    assert len(_starts_backends(pg_url)) == 1


async def test_a_cancelled_caller_leaves_the_writer_usable(pg: PostgresStore) -> None:
    """Its start still commits with its group (as a start handed to a lane would), and
    the next start is written on the same connection."""
    gone = execution_row()
    caller = asyncio.create_task(pg.create_execution(gone, [event_row(gone["id"], 1)]))
    await asyncio.sleep(0)  # the caller has queued its start and the group's task began
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    after = execution_row()
    assert await pg.create_execution(after, []) == after["id"]
    assert await pg.get_execution(gone["id"]) is not None
    assert len(await pg.get_events(gone["id"])) == 1


def test_a_store_used_from_a_new_event_loop_reconnects(pg_url: str) -> None:
    """An asyncio connection belongs to the loop that opened it: a later loop gets its own."""
    store = PostgresStore(pg_url)
    rows = [execution_row(), execution_row()]

    async def first() -> str:
        await store.initialize()
        return await store.create_execution(rows[0], [event_row(rows[0]["id"], 1)])

    async def second() -> str:
        try:
            created = await store.create_execution(rows[1], [event_row(rows[1]["id"], 1)])
            assert _starts_backends(pg_url) not in ([], [before])  # a connection of its own
            return created
        finally:
            await store.close()

    assert asyncio.run(first()) == rows[0]["id"]
    (before,) = _starts_backends(pg_url)
    assert asyncio.run(second()) == rows[1]["id"]
    with admin(pg_url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM execution_events WHERE execution_id = ANY(%s)",
            ([r["id"] for r in rows],),
        ).fetchone()
    assert found == (2,)
    assert _none_left(pg_url)


def test_a_store_closed_from_another_event_loop_closes_its_connection(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    row = execution_row()

    async def start() -> str:
        await store.initialize()
        return await store.create_execution(row, [])

    assert asyncio.run(start()) == row["id"]
    assert len(_starts_backends(pg_url)) == 1
    asyncio.run(store.close())
    assert _none_left(pg_url)
