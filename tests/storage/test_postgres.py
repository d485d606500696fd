"""What is PostgreSQL's own: choosing it from the URL, connection errors, the server clock."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
from datetime import timedelta

import psycopg
import pytest
import sqlalchemy.exc

from flowledger.errors import DatabaseUrlError, StorageError
from flowledger.storage import Batch, open_store
from flowledger.storage.postgres import PostgresStore
from flowledger.storage.sql import SQLStore
from tests.pg import PASSWORD, PASSWORD_USER, Cluster
from tests.storage.conftest import event_row, leased_execution, new_execution, step_row

LEASE = timedelta(minutes=5)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db",
        "postgres://u:secret@h:5433/db",
        "postgresql+psycopg://u@h/db?sslmode=require",
    ],
)
def test_postgres_urls_select_psycopg_3(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.url == url
    assert store._engine.dialect.driver == "psycopg"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+asyncpg://u@h/db", "unsupported PostgreSQL driver"),
        ("postgresql://u@h:port/db", "cannot parse the PostgreSQL URL"),
        ("mysql://u@h/db", "unsupported database URL"),
    ],
)
def test_unusable_urls_are_refused_up_front(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message):  # refused input, as the faces say
        open_store(url)


async def failure(url: str) -> str:
    store = open_store(url)
    try:
        with pytest.raises(StorageError) as raised:
            await store.initialize()
    finally:
        await store.close()
    text = str(raised.value)
    assert "\n" not in text and "Traceback" not in text
    return text


async def test_nothing_listening_on_the_port() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, with no server
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = await failure(f"postgresql://u:hunter2@127.0.0.1:{port}/db")
    assert text.startswith(f"cannot connect to PostgreSQL at postgresql://u:***@127.0.0.1:{port}/")
    assert "Connection refused" in text and "check the host and port" in text
    assert "hunter2" not in text


@pytest.mark.postgresql
async def test_a_missing_database_or_role(pg_cluster: Cluster) -> None:
    text = await failure(pg_cluster.url("no_such_db"))
    assert 'database "no_such_db" does not exist' in text and "createdb" in text
    port = pg_cluster.port
    text = await failure(f"postgresql://nobody@127.0.0.1:{port}/postgres")
    assert 'role "nobody" does not exist' in text and "user name" in text


@pytest.mark.postgresql
async def test_a_wrong_password(pg_cluster: Cluster) -> None:
    base = f"127.0.0.1:{pg_cluster.port}/postgres"
    text = await failure(f"postgresql://{PASSWORD_USER}:not-{PASSWORD}@{base}")
    assert "password authentication failed" in text and PASSWORD not in text
    right = open_store(f"postgresql://{PASSWORD_USER}:{PASSWORD}@{base}")
    try:  # the same role with its password connects (and may not create tables: no upgrade)
        assert isinstance(right, SQLStore)
        with right.conn.begin():
            pass
    finally:
        await right.close()


@pytest.mark.postgresql
async def test_timers_follow_the_database_clock_not_the_workers(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(pg_url)
    try:
        await store.initialize()
        execution_id = await new_execution(store, runtime_status="InProgress")
        epoch = await store.acquire_lease(execution_id, "w", LEASE)
        assert epoch is not None
        wake_at = await store.db_now() + timedelta(hours=1)
        await store.release_lease(execution_id, epoch, wake_at=wake_at)
        # A worker whose clock runs a day ahead still sees the timer as not due.
        skewed = wake_at + timedelta(days=1)
        monkeypatch.setattr("flowledger.storage.sql.utcnow", lambda: skewed)
        assert await store.claim_executions("w", 10, LEASE) == []
        assert await store.db_now() < wake_at
    finally:
        await store.close()


@pytest.mark.postgresql
async def test_claims_and_releases_do_not_queue_behind_the_writer(pg_url: str) -> None:
    """They run on a connection of their own: a group commit waiting for its WAL flush
    (here: a writer call held open) does not hold up a worker's claims and releases."""
    store = open_store(pg_url)
    assert isinstance(store, SQLStore)
    try:
        await store.initialize()
        execution_id = await new_execution(store, runtime_status="NotStarted")
        held, release_writer = threading.Event(), threading.Event()

        def busy_writer() -> None:
            held.set()
            release_writer.wait(timeout=10)

        blocked = store._writer.run(busy_writer)
        await asyncio.to_thread(held.wait, 10)
        ((claimed, epoch),) = await store.claim_executions("w", 10, LEASE)
        assert claimed == execution_id
        await store.release_lease(execution_id, epoch)
        assert not blocked.done()  # both went by while the writer was still busy
        release_writer.set()
        await blocked
        row = await store.get_execution(execution_id)
        assert row is not None
        assert (row["lease_owner"], row["lease_epoch"]) == (None, epoch)
    finally:
        await store.close()


@pytest.mark.postgresql
async def test_the_heartbeat_meets_a_cut_connection_as_a_storage_error(pg_url: str) -> None:
    """A heartbeat whose connection the server cut (a restart, a failover) failed with the
    driver's own error, which the runtime told from a bug by its module's name: it is a
    StorageError naming the cause now, and the next beat connects again."""
    store = open_store(pg_url)
    try:
        await store.initialize()
        execution_id, epoch = await leased_execution(store, "me", LEASE)
        renew = functools.partial(store.renew_leases, "me", {execution_id: epoch}, LEASE)
        _cut_every_connection(pg_url)
        with pytest.raises(
            StorageError, match=r"^the database could not renew the leases: "
        ) as cut:
            await renew()
        assert isinstance(cut.value.__cause__, sqlalchemy.exc.OperationalError)
        await renew()  # connected again
        _cut_every_connection(pg_url)
        await store.db_now()  # a read of the clock: tried once more on a new connection
        assert await store.renew_leases("me", {execution_id: epoch}, LEASE) == {execution_id}
    finally:
        await store.close()


@pytest.mark.postgresql
async def test_the_lease_connection_reconnects_after_it_was_cut(pg_url: str) -> None:
    """Claims and releases have a connection of their own: one the server cut fails that
    call with a StorageError naming the cause (the worker logs it and tries again), and the
    next call connects again."""
    store = open_store(pg_url)
    try:
        await store.initialize()
        execution_id = await new_execution(store, runtime_status="NotStarted")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(  # waits (up to 10 s) until the backend has gone
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE application_name = 'flowledger-leases' AND datname = current_database()"
            )
        with pytest.raises(StorageError, match="server closed the connection"):
            await store.claim_executions("w", 10, LEASE)
        ((claimed, epoch),) = await store.claim_executions("w", 10, LEASE)
        assert claimed == execution_id and epoch == 1
    finally:
        await store.close()


def _cut_every_connection(pg_url: str, *, and_refuse: bool = False) -> None:
    """What a restart does to the store's connections (and, ``and_refuse``, a database
    that does not take new ones: down)."""
    server, name = pg_url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        if and_refuse:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(  # waits (up to 10 s) until they have gone
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )


@pytest.mark.postgresql
async def test_reads_outlive_a_restart_and_a_database_down_is_a_storage_error(pg_url: str) -> None:
    """After a restart, each reader thread's connection failed the next read given to it
    (a plain-text 500 in the API, minutes later for a reader seldom used); with the
    database down, the driver's error came out raw (a 500, not storage_unavailable)."""
    store = open_store(pg_url)
    try:
        await store.initialize()
        execution_id = await new_execution(store)
        _cut_every_connection(pg_url)
        for _ in range(12):  # more reads than reader threads: each meets its dead connection
            found = await asyncio.gather(
                store.get_execution(execution_id), store.find_api_token("nobody's")
            )
            assert found[0] is not None and found[0]["id"] == execution_id and found[1] is None
        _cut_every_connection(pg_url, and_refuse=True)
        try:
            for read in (store.get_execution(execution_id), store.find_api_token("x")):
                with pytest.raises(StorageError, match=r"^the database does not answer: "):
                    await read
            with pytest.raises(StorageError, match=r"^the database does not answer: "):
                await store.acquire_lease(execution_id, "me", LEASE)
        finally:
            with psycopg.connect(pg_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as su:
                name = pg_url.rsplit("/", 1)[1]
                su.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert (await store.get_execution(execution_id) or {}).get("id") == execution_id
    finally:
        await store.close()


@pytest.mark.postgresql
async def test_a_round_meets_a_database_down_as_a_storage_error(pg_url: str) -> None:
    """The writer's connection reconnected outside the group's guard: with the database
    refusing connections, every round's runner "crashed (OperationalError)" with a
    traceback, where a database down is said in a line (StorageError)."""
    store = open_store(pg_url)
    try:
        await store.initialize()
        execution_id, epoch = await leased_execution(store, "w", LEASE)
        batch = Batch(
            execution_id,
            epoch,
            execution={"runtime_status": "InProgress", "event_seq": 1},
            insert_steps=[step_row(execution_id)],
            events=[event_row(execution_id, 1)],
        )
        _cut_every_connection(pg_url, and_refuse=True)
        try:
            for _ in range(2):  # the second reconnects the connection the first dropped
                with pytest.raises(StorageError):
                    await store.commit(batch, group=True)
        finally:
            server, name = pg_url.rsplit("/", 1)
            with psycopg.connect(f"{server}/postgres", autocommit=True) as su:
                su.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await store.commit(batch, group=True)  # connected again: written
        assert len(await store.get_events(execution_id)) == 1
    finally:
        await store.close()


@pytest.mark.postgresql
def test_a_transaction_a_frozen_process_left_open_is_ended_by_the_server(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker stopped (SIGSTOP, a paused VM) inside a transaction kept its row locks for
    as long as it stayed stopped: a cancel of its executions waited on them with no end
    (a CI run hung so). Our sessions now ask the server to end such a transaction."""
    monkeypatch.setattr("flowledger.storage.postgres.IDLE_IN_TRANSACTION", 1, raising=False)
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    frozen = store._engine.connect()  # as a stopped process's: a lock taken, then nothing
    frozen.begin()
    frozen.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(20261202)"))
    try:
        url = pg_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SET statement_timeout = '30s'")  # old code: this, then an error
            other.execute("SELECT pg_advisory_lock(20261202)")  # the lock is free again
    finally:
        frozen.invalidate()
        store._engine.dispose()
