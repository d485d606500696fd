"""Store calls run off the event loop: a slow read holds up nobody but its caller.

The slow read is gated, not timed: it blocks inside the database until the test lets
it go (SQLite: a SQL function waiting on an event; PostgreSQL: a shared advisory lock
the test holds). Each test checks an order of events while the read is still held —
never how fast anything was. The gate gives up after GATE_LIMIT seconds, so a store
that ran the read on the loop fails these tests instead of hanging them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from flowledger import Engine
from flowledger.config import Settings
from flowledger.runtime.leases import LeaseKeeper
from flowledger.storage import Batch, open_store
from flowledger.storage.sql import SQLStore
from flowledger.storage.sqlite import SQLiteStore
from flowledger.storage.sqlpart import reads
from flowledger.timeutil import Clock
from tests.storage.conftest import event_row, new_execution, step_row
from tests.storage.test_group_commit import _owned, _round

LEASE = timedelta(minutes=5)
#: How long a gated read waits at most before it gives up (only a broken store gets there).
GATE_LIMIT = 20.0
ADVISORY_KEY = 0x5104


class Gate:
    """A read that blocks in the database until ``open()``; ``entered`` once it runs."""

    def __init__(self, store: SQLStore, pg_url: str | None) -> None:
        self.store = store
        self.entered = threading.Event()
        self.finished = threading.Event()
        self._release = threading.Event()
        self._pg: psycopg.Connection[Any] | None = None
        if pg_url is not None:
            self._pg = psycopg.connect(pg_url, autocommit=True)
            self._pg.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))

    def open(self) -> None:
        self._release.set()
        if self._pg is not None:
            self._pg.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))

    def close(self) -> None:
        self.open()
        if self._pg is not None:
            self._pg.close()

    def _slow(self, store: SQLStore) -> int:
        """A read method's body: runs where every ``@reads`` body runs."""
        with store.reading() as conn:
            if self._pg is None:
                conn.connection.dbapi_connection.create_function(  # type: ignore[union-attr]
                    "held_gate", 0, lambda: int(self._release.wait(GATE_LIMIT))
                )
                query = "SELECT held_gate()"
            else:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(GATE_LIMIT)}s'")
                query = f"SELECT count(*) FROM (SELECT pg_advisory_xact_lock_shared({ADVISORY_KEY})) AS held"
            self.entered.set()
            try:
                return int(conn.execute(text(query)).scalar_one())
            finally:
                self.finished.set()

    async def read(self) -> int:
        return await reads(self._slow)(self.store)


@asynccontextmanager
async def held_read(store: SQLStore) -> AsyncIterator[Gate]:
    """A slow read in a task of its own, running (entered) when the body starts."""
    pg_url = store.url if store.url.startswith("postgresql") else None
    gate = Gate(store, pg_url)
    reader = asyncio.create_task(gate.read())
    try:
        while not gate.entered.is_set():  # the reader thread picks it up
            await asyncio.sleep(0.001)
        yield gate
    finally:
        gate.close()
        await reader
        assert gate.finished.is_set()


async def test_a_slow_read_does_not_delay_a_lease_renewal(
    store: SQLStore,
) -> None:
    execution_id = await new_execution(store)
    epoch = await store.acquire_lease(execution_id, "me", LEASE)
    assert epoch is not None
    lost: list[str] = []
    keeper = LeaseKeeper(store, "me", LEASE, Clock(), lost.append)
    keeper.hold(execution_id, epoch)
    async with held_read(store) as gate:
        # The heartbeat (the database clock, then the renewal) completes while the read
        # is still blocked in the database.
        await keeper.beat()
        assert not gate.finished.is_set()
        assert lost == []
        # So do a round's commit and another read.
        await store.commit(
            Batch(
                execution_id,
                epoch,
                execution={"runtime_status": "InProgress", "event_seq": 1},
                insert_steps=[step_row(execution_id)],
                events=[event_row(execution_id, 1)],
            )
        )
        row = await store.get_execution(execution_id)
        assert row is not None and row["runtime_status"] == "InProgress"
        assert not gate.finished.is_set()
    row = await store.get_execution(execution_id)
    assert row is not None and row["lease_owner"] == "me"


async def test_the_loop_keeps_ticking_during_a_long_store_call(
    store: SQLStore,
) -> None:
    ticks = 0

    async def probe() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticker = asyncio.create_task(probe())
    try:
        async with held_read(store) as gate:
            seen = ticks
            while ticks < seen + 5:  # a blocked loop would not get past this until too late
                await asyncio.sleep(0.001)
            assert not gate.finished.is_set()
    finally:
        ticker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ticker


async def test_close_waits_for_a_running_call_and_stops_every_thread(
    db_url: str,
) -> None:
    store = open_store(db_url)
    assert isinstance(store, SQLStore)
    await store.initialize()
    await store.get_execution(await new_execution(store))
    lanes = [store._writer, store._readers]
    threads = [t for lane in lanes for t in lane._threads]
    assert threads and all(t.is_alive() for t in threads)
    reads_done = asyncio.gather(*(store.list_workflow_versions() for _ in range(10)))
    await asyncio.sleep(0)  # every read is queued before close starts
    await store.close()
    assert await reads_done == [[]] * 10
    assert not any(t.is_alive() for t in threads)


async def test_an_in_memory_database_serializes_on_its_one_connection() -> None:
    store = open_store("sqlite://")
    assert isinstance(store, SQLStore)
    try:
        await store.initialize()
        assert store._readers is store._writer
        ids = await asyncio.gather(*(new_execution(store) for _ in range(20)))
        rows = await asyncio.gather(*(store.get_execution(i) for i in ids))
        assert [r["id"] for r in rows if r is not None] == ids
    finally:
        await store.close()


def _synchronous(store: SQLStore) -> Callable[[], Any]:
    def body(s: SQLStore) -> Any:
        with s.reading() as conn:
            return conn.exec_driver_sql("PRAGMA synchronous").scalar()

    return lambda: reads(body)(store)


async def test_storage_takes_its_settings_and_never_reads_the_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'flow.db'}"
    monkeypatch.setenv("FLOWLEDGER_SQLITE_SYNCHRONOUS", "EXTRA")
    plain = open_store(url)
    full = open_store(url, Settings(sqlite_synchronous="FULL"))
    assert isinstance(plain, SQLStore) and isinstance(full, SQLStore)
    try:
        await plain.initialize()
        assert await _synchronous(plain)() == 1  # NORMAL: the default, not the environment
        assert await _synchronous(full)() == 2  # FULL
    finally:
        await plain.close()
        await full.close()


async def test_the_engine_passes_its_settings_down(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'given.db'}",
        lease=timedelta(seconds=7),
        sqlite_synchronous="FULL",
        artifacts_dir=str(tmp_path / "given-artifacts"),
        output_budget=4096,
    )
    monkeypatch.setenv("FLOWLEDGER_DB", f"sqlite:///{tmp_path / 'ignored.db'}")
    monkeypatch.setenv("FLOWLEDGER_LEASE", "90s")
    async with Engine(settings=settings, entry_points=False) as engine:
        assert engine.db_url == settings.db_url and engine.lease == timedelta(seconds=7)
        assert engine.artifacts.root == tmp_path / "given-artifacts"
        assert engine.artifacts.budget == 4096
        store = engine.store
        assert isinstance(store, SQLStore)
        assert await _synchronous(store)() == 2
    assert not (tmp_path / "ignored.db").exists()


async def test_rounds_that_arrive_while_a_group_is_written_form_the_next_one(
    store: SQLStore,
) -> None:
    owned = [await _owned(store) for _ in range(6)]
    release = threading.Event()
    # The writer is busy (as with a slow disk): the first group waits behind this.
    busy = store._writer.run(lambda: release.wait(GATE_LIMIT))
    first = [asyncio.ensure_future(store.commit(_round(i, e), group=True)) for i, e in owned[:3]]
    await asyncio.sleep(0)  # the first group is handed to the writer
    second = [asyncio.ensure_future(store.commit(_round(i, e), group=True)) for i, e in owned[3:]]
    await asyncio.sleep(0)
    assert not any(f.done() for f in first + second)
    release.set()
    assert await busy is True
    assert await asyncio.gather(*first, *second) == [None] * 6
    for execution_id, _ in owned:
        assert len(await store.get_step_executions(execution_id)) == 1


async def test_a_commit_waiting_for_another_process_lock_waits_off_the_loop(
    tmp_path: Any,
) -> None:
    """A small lone round commits on the loop only when nothing can wait (SQLiteStore's
    _commit_inline): with another process holding SQLite's write lock it goes to the
    writer thread, and the loop keeps turning until the lock is free."""
    path = tmp_path / "flow.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await store.initialize()
        execution_id, epoch = await _owned(store)
        # The lease was taken inline, which leaves the writer's busy timeout at 0: the
        # writer thread sets it back before its own transaction, so that one waits.
        assert isinstance(store, SQLiteStore) and store._waitless is not None
        other.execute("BEGIN IMMEDIATE")  # "another process" writes
        commit = asyncio.ensure_future(store.commit(_round(execution_id, epoch)))
        for _ in range(5):  # a commit waiting on the loop would stop these
            await asyncio.sleep(0.001)
        assert not commit.done()
        other.execute("COMMIT")
        await commit
        assert len(await store.get_step_executions(execution_id)) == 1
        # With the lock free, the same kind of round commits at once.
        await store.commit(
            Batch(execution_id, epoch, update_steps=[], events=[event_row(execution_id, 2)])
        )
        assert len(await store.get_events(execution_id)) == 2
    finally:
        other.close()
        await store.close()


class LaneCalls:
    """Counts the calls a store hands to its lanes (an inline call hands none)."""

    def __init__(self, store: SQLStore) -> None:
        self.reads = 0
        self.writes = 0
        readers, writer = store._readers, store._writer
        read, write = readers.run, writer.run

        def counted_read(body: Callable[[], Any]) -> Any:
            self.reads += 1
            return read(body)

        def counted_write(body: Callable[[], Any]) -> Any:
            self.writes += 1
            return write(body)

        readers.run = counted_read  # type: ignore[method-assign]
        writer.run = counted_write  # type: ignore[method-assign]


@asynccontextmanager
async def sqlite_store(path: Any) -> AsyncIterator[SQLStore]:
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


async def test_point_reads_and_lease_writes_run_inline_when_nothing_can_wait(
    tmp_path: Any,
) -> None:
    async with sqlite_store(tmp_path / "flow.db") as store:
        execution_id = await new_execution(store)
        calls = LaneCalls(store)
        row = await store.acquire_lease_row(execution_id, "me", LEASE)
        assert row is not None and row["lease_owner"] == "me" and row["lease_epoch"] == 1
        read = await store.get_execution(execution_id)
        assert read == row
        released = await store.release_lease_row(execution_id, 1)
        assert released is not None and released["lease_owner"] is None
        assert (calls.reads, calls.writes) == (0, 0)
        # A read of many rows is no point read: it always goes to a reader thread.
        await store.get_step_executions(execution_id)
        assert calls.reads == 1


def _second(execution_id: str, epoch: int, step: str, seq: int) -> Batch:
    """Another round of an execution: a step of its own and the next event."""
    return Batch(
        execution_id,
        epoch,
        insert_steps=[step_row(execution_id, step_id=step, step_path=step, seq=seq)],
        events=[event_row(execution_id, seq)],
    )


async def test_small_groups_commit_on_the_loop_and_larger_ones_on_the_writer(
    tmp_path: Any,
) -> None:
    """Rounds grouped in one turn commit on the loop under the lone round's rule (the
    writer idle, the lock free at once, at most INLINE_MAX_ROWS rows in all); a group with
    more rows, or one reaching another execution, goes to the writer thread."""
    from flowledger.storage.sqlite import INLINE_MAX_ROWS

    async with sqlite_store(tmp_path / "flow.db") as store:
        per_round = 2  # _round: one step and one event
        fits = INLINE_MAX_ROWS // per_round
        owned = [await _owned(store) for _ in range(fits + 1)]
        calls = LaneCalls(store)
        together = [store.commit(_round(i, e), group=True) for i, e in owned[:fits]]
        assert await asyncio.gather(*together) == [None] * fits
        assert calls.writes == 0  # one transaction, on the loop
        more = [store.commit(_second(i, e, "b", 2), group=True) for i, e in owned]
        assert await asyncio.gather(*more) == [None] * len(owned)
        assert calls.writes == 1  # one more row than fits: the writer's transaction
        child = dict(await store.get_execution(owned[0][0]) or {})
        linked = _second(owned[0][0], owned[0][1], "c", 3)
        linked.create_executions.append({**child, "id": "child-1", "lease_epoch": 0})
        await store.commit(linked, group=True)
        assert calls.writes == 2  # it creates an execution: the writer's
        counts = [len(await store.get_step_executions(i)) for i, _ in owned]
        assert counts == [3] + [2] * (fits - 1) + [1]
        assert await store.get_execution("child-1") is not None


async def test_a_group_waiting_for_another_process_lock_waits_off_the_loop(
    tmp_path: Any,
) -> None:
    path = tmp_path / "flow.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        async with sqlite_store(path) as store:
            owned = [await _owned(store) for _ in range(3)]
            other.execute("BEGIN IMMEDIATE")  # "another process" writes
            group = asyncio.gather(*(store.commit(_round(i, e), group=True) for i, e in owned))
            for _ in range(5):  # a group waiting on the loop would stop these
                await asyncio.sleep(0.001)
            assert not group.done()
            other.execute("COMMIT")
            assert await group == [None] * 3
            for execution_id, _ in owned:
                assert len(await store.get_step_executions(execution_id)) == 1
    finally:
        other.close()


async def test_a_point_read_that_would_wait_goes_to_a_reader_thread(tmp_path: Any) -> None:
    """What makes a WAL read wait (another process recovering the WAL after a crash, or
    holding the file in exclusive locking mode) cannot be staged while the store has the
    file open, so the loop's read connection is pointed at a second database whose lock
    another connection holds: SQLite refuses the read at once (busy timeout 0), and the
    read goes to a reader thread (the real database) while the loop keeps turning."""
    async with sqlite_store(tmp_path / "flow.db") as store:
        execution_id = await new_execution(store)
        calls = LaneCalls(store)
        with refused_on_the_loop(store, tmp_path):
            row = await store.get_execution(execution_id)
            assert row is not None and row["id"] == execution_id
            assert calls.reads == 1  # refused inline, answered by a reader thread
        await store.get_execution(execution_id)
        assert calls.reads == 1  # the real connection is free: inline again


@contextmanager
def refused_on_the_loop(store: SQLiteStore, folder: Any) -> Iterator[None]:
    """Point the loop's read connection at a second database whose lock another connection
    holds (see the test above): every read tried on the loop meanwhile is refused."""
    decoy = folder / "locked.db"
    holder = sqlite3.connect(decoy, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # rollback journal: readers are refused now
    engine = create_engine(f"sqlite:///{decoy}", poolclass=NullPool)
    locked = engine.connect()
    locked.exec_driver_sql("PRAGMA busy_timeout=0")
    locked.commit()
    real, store._loop_conn = store._loop_conn, locked
    try:
        yield
    finally:
        store._loop_conn = real
        holder.close()
        locked.close()
        engine.dispose()


async def test_documents_asked_for_together_are_read_together_on_the_loop_or_a_reader(
    tmp_path: Any,
) -> None:
    async with sqlite_store(tmp_path / "flow.db") as store:
        assert isinstance(store, SQLiteStore)
        ids = [await new_execution(store) for _ in range(3)]
        calls = LaneCalls(store)
        together = await asyncio.gather(*(store.read_execution(i) for i in [*ids, "absent"]))
        assert [found[0]["id"] if found else None for found in together] == [*ids, None]
        assert calls.reads == 0  # one read, on the loop
        with refused_on_the_loop(store, tmp_path):
            refused = await asyncio.gather(*(store.read_execution(i) for i in [*ids, "absent"]))
        assert refused == together
        assert calls.reads == 1  # refused inline: one read of all four on a reader thread


async def test_a_lease_write_that_would_wait_goes_to_the_writer_thread(tmp_path: Any) -> None:
    path = tmp_path / "flow.db"
    async with sqlite_store(path) as store:
        execution_id = await new_execution(store)
        calls = LaneCalls(store)
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            other.execute("BEGIN IMMEDIATE")  # "another process" writes
            acquired = asyncio.ensure_future(store.acquire_lease_row(execution_id, "me", LEASE))
            for _ in range(5):
                await asyncio.sleep(0.001)
            assert not acquired.done() and calls.writes == 1
            other.execute("COMMIT")
        finally:
            other.close()
        row = await acquired
        assert row is not None and row["lease_epoch"] == 1
        # Refused at BEGIN on the loop, nothing was written there: exactly one epoch bump.
        again = await store.get_execution(execution_id)
        assert again is not None and again["lease_epoch"] == 1


async def test_a_lease_write_queues_behind_a_busy_writer(tmp_path: Any) -> None:
    """While the writer thread runs (or has queued) anything, a small write goes behind
    it: it never overtakes an earlier write, nor shares a connection in use."""
    async with sqlite_store(tmp_path / "flow.db") as store:
        execution_id = await new_execution(store)
        release = threading.Event()
        busy = store._writer.run(lambda: release.wait(GATE_LIMIT))
        acquired = asyncio.ensure_future(store.acquire_lease(execution_id, "me", LEASE))
        for _ in range(5):
            await asyncio.sleep(0.001)
        assert not acquired.done()
        release.set()
        assert await busy is True
        assert await acquired == 1


async def test_a_point_read_from_another_thread_goes_to_a_reader(tmp_path: Any) -> None:
    # The loop's read connection belongs to the thread that opened the store.
    async with sqlite_store(tmp_path / "flow.db") as store:
        execution_id = await new_execution(store)
        calls = LaneCalls(store)
        found = await asyncio.to_thread(
            lambda: asyncio.run(store.get_execution(execution_id))  # type: ignore[arg-type]
        )
        assert found is not None and calls.reads == 1
