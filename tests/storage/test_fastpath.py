"""The commit path's own timestamp conversion writes exactly what SQLAlchemy's would."""

from __future__ import annotations

import asyncio
import sqlite3
import warnings
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import insert, select
from sqlalchemy.dialects import sqlite

from flowledger.storage.fastpath import prepare_insert, sqlite_utc_text
from flowledger.storage.schema import UTCDateTime, executions, step_executions
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import T0, event_row, execution_row, step_row

MOMENTS = [
    datetime(2026, 11, 29, 8, 30, 1, 123456, tzinfo=UTC),
    datetime(2026, 11, 29, 8, 30, 1, tzinfo=UTC),  # no microseconds: still six digits
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    datetime(2026, 11, 29, 8, 30, 1, 5),  # naive: read as local time by both
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_sqlite_timestamps_store_what_sqlalchemy_and_the_driver_store(moment: datetime) -> None:
    processor = UTCDateTime().bind_processor(sqlite.dialect())
    assert processor is not None
    with sqlite3.connect(":memory:") as conn, warnings.catch_warnings():
        # What the driver's own datetime adapter writes is the thing pinned here; Python
        # 3.12 deprecates that adapter (flowledger's fast-path writes hand sqlite3 text).
        warnings.simplefilter("ignore", DeprecationWarning)
        stored = conn.execute("SELECT ?", (processor(moment),)).fetchone()[0]
        ours = conn.execute("SELECT ?", (sqlite_utc_text(moment),)).fetchone()[0]
    assert ours == stored


def test_prepared_sqlite_writes_use_it_for_timestamp_columns_only() -> None:
    prepared = prepare_insert(
        step_executions, [c.name for c in step_executions.columns], sqlite.dialect()
    )
    converted = {prepared.columns[i]: p for i, p in prepared._converted}
    assert converted
    assert all(
        (p is sqlite_utc_text) == isinstance(step_executions.c[name].type, UTCDateTime)
        for name, p in converted.items()
    )


def test_a_timestamp_converted_again_gives_the_same_text() -> None:
    moment = datetime(2026, 11, 29, 8, 30, 1, 250, tzinfo=UTC)
    first = sqlite_utc_text(moment)
    assert sqlite_utc_text(moment) == first == "2026-11-29 08:30:01.000250"
    # Ambiguous local times (fold) never share a remembered text.
    berlin = ZoneInfo("Europe/Berlin")
    early = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)
    late = early.replace(fold=1)
    assert sqlite_utc_text(early) != sqlite_utc_text(late)


async def test_an_execution_reads_back_as_sqlalchemy_reads_it(store: SQLStore) -> None:
    """get_execution goes through the driver (storage.fastpath.PreparedRead): the same
    values and types as SQLAlchemy's own select, aware UTC timestamps included."""
    row = execution_row(started_at=datetime(2026, 11, 29, 8, 30, 1, 5, tzinfo=UTC), wake_at=None)
    await store.create_execution(row, [event_row(row["id"], 1)])
    fast = await store.get_execution(row["id"])
    with store.reading():
        core = dict(store.conn.execute(select(executions).where(executions.c.id == row["id"]))
                    .one()._mapping)  # fmt: skip
    assert fast == core
    assert fast is not None and fast["started_at"] == row["started_at"]
    assert fast["started_at"].tzinfo is not None
    assert await store.get_execution("missing") is None
    assert len(await store.get_events(row["id"])) == 1


async def test_a_document_read_returns_what_sqlalchemy_reads(store: SQLStore) -> None:
    """read_execution (GET /executions/{id}) reads the row and its steps through the
    driver: the same rows, values and types as SQLAlchemy's selects, steps in seq order."""
    row = execution_row()
    await store.create_execution(row, [event_row(row["id"], 1)])
    steps = [
        step_row(row["id"], seq=3, step_id="c", step_path="c", completed_at=T0, output='{"x": 1}'),
        step_row(row["id"], seq=1, step_id="a", step_path="a"),
        step_row(row["id"], seq=2, step_id="b", step_path="b", suspended=1),
    ]
    with store.conn.begin():
        store.conn.execute(insert(step_executions), steps)
    found = await store.read_execution(row["id"])
    assert found is not None
    fast_row, fast_steps = found
    with store.reading():
        core_row = dict(
            store.conn.execute(select(executions).where(executions.c.id == row["id"]))
            .one()
            ._mapping
        )
        core_steps = [
            dict(r._mapping)
            for r in store.conn.execute(
                select(step_executions)
                .where(step_executions.c.execution_id == row["id"])
                .order_by(step_executions.c.seq)
            )
        ]
    assert fast_row == core_row
    assert fast_steps == core_steps
    assert [s["seq"] for s in fast_steps] == [1, 2, 3]
    assert fast_steps[2]["completed_at"] == T0 and fast_steps[2]["completed_at"].tzinfo is not None
    assert await store.read_execution("missing") is None


async def test_concurrent_document_reads_each_get_their_own_document(store: SQLStore) -> None:
    """Many reads at once (PostgreSQL folds them into reads of many executions,
    storage.coalesce): each answer is its own execution's row and steps in seq order,
    as SQLAlchemy reads them; an execution without steps has none; a missing one is None."""
    ids = []
    for n in range(12):
        row = execution_row(correlation_id=f"c{n}")
        await store.create_execution(row, [event_row(row["id"], 1)])
        steps = [
            step_row(row["id"], seq=seq, step_id=f"s{seq}", step_path=f"s{seq}")
            for seq in reversed(range(1, n % 4 + 1))
        ]
        if steps:
            with store.conn.begin():
                store.conn.execute(insert(step_executions), steps)
        ids.append(row["id"])
    asked = [*ids, "missing", *ids[:5]]
    answers = await asyncio.gather(*(store.read_execution(i) for i in asked))
    with store.reading():
        for execution_id, found in zip(asked, answers, strict=True):
            core = store.conn.execute(select(executions).where(executions.c.id == execution_id))
            core_row = core.one_or_none()
            if core_row is None:
                assert found is None
                continue
            assert found is not None
            core_steps = store.conn.execute(
                select(step_executions)
                .where(step_executions.c.execution_id == execution_id)
                .order_by(step_executions.c.seq)
            )
            assert found == (dict(core_row._mapping), [dict(r._mapping) for r in core_steps])
    assert [len(found[1]) for found in answers[:4] if found] == [0, 1, 2, 3]


@pytest.mark.postgresql
async def test_a_postgresql_read_sees_one_snapshot(pg_url: str) -> None:
    """Every statement of a read transaction (``reading``) reads one snapshot (REPEATABLE
    READ, read only), not one each as under READ COMMITTED: a commit made between two of
    them is not seen by the second. The connection then writes as before."""
    from flowledger.storage.postgres import PostgresStore

    store = PostgresStore(pg_url)
    await store.initialize()
    try:
        row = execution_row()
        await store.create_execution(row, [event_row(row["id"], 1)])
        read = store._reads()[0]

        def statuses_around_a_commit() -> tuple[str, str, str, str]:
            with store.reading() as conn:
                [[before]] = store._driver_reads([(read, row["id"])])
                with psycopg.connect(pg_url, autocommit=True) as other:
                    other.execute(
                        "UPDATE executions SET runtime_status = 'Failed' WHERE id = %s",
                        (row["id"],),
                    )
                [[after]] = store._driver_reads([(read, row["id"])])
                read_only = conn.exec_driver_sql("SHOW transaction_read_only").scalar_one()
            with store.conn.begin():  # a write transaction on the same connection
                writes = store.conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
            return before["runtime_status"], after["runtime_status"], read_only, writes

        found = await store._readers.run(statuses_around_a_commit)
        assert found == ("NotStarted", "NotStarted", "on", "read committed")
        doc = await store.read_execution(row["id"])
        assert doc is not None and doc[0]["runtime_status"] == "Failed"
    finally:
        await store.close()


def test_instants_of_other_seconds_never_share_a_text() -> None:
    """The text without the fraction is kept for the second the last instant fell in."""
    base = datetime(2026, 11, 29, 8, 30, 1, 5, tzinfo=UTC)
    steps = [timedelta(0), timedelta(seconds=1), timedelta(seconds=-1), timedelta(days=-1),
             timedelta(microseconds=999_994), timedelta(microseconds=999_995),
             timedelta(microseconds=-5), timedelta(minutes=1)]  # fmt: skip
    for step in steps:
        # A new object each time: the identity cache does not answer.
        moment = (base + step).replace(tzinfo=UTC)
        assert sqlite_utc_text(moment) == moment.replace(tzinfo=None).isoformat(" ")


def test_every_digit_of_the_fraction_is_written_as_isoformat_writes_it() -> None:
    """The fraction comes three digits at a time from a table: its edges and a spread."""
    base = datetime(2026, 11, 29, 8, 30, 1, tzinfo=UTC)
    micros = [1, 9, 10, 99, 100, 999, 1000, 1001, 10_000, 99_999, 100_000, 500_500, 999_999]
    micros += range(7, 1_000_000, 7919)
    for micro in micros:
        moment = base.replace(microsecond=micro)
        assert sqlite_utc_text(moment) == moment.replace(tzinfo=None).isoformat(" ")
