"""storage.sqlpart.DriverErrors: a statement sent to the driver directly fails as one sent
through SQLAlchemy does (callers catch DBAPIError), and nothing else is touched; and
DatabaseTrouble: the database's condition comes out of the store as StorageError."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from flowledger.errors import StorageError
from flowledger.storage import open_store
from flowledger.storage.sql import SQLStore
from flowledger.storage.sqlpart import DatabaseTrouble, DriverErrors, schema_mismatch

#: What a SQLite file locked past the busy timeout is said to be (storage.sqlpart).
LOCKED = (
    "the SQLite database stayed locked by another process for 30 s (database is locked): "
    "something holds its write lock (an open transaction in a sqlite3 shell, a backup, "
    "a stuck process)"
)


def test_a_driver_error_comes_out_as_sqlalchemys() -> None:
    conn = sqlite3.connect(":memory:")
    with pytest.raises(DBAPIError) as raised, DriverErrors(sqlite3.Error, "SELECT * FROM nowhere"):
        conn.execute("SELECT * FROM nowhere")
    assert isinstance(raised.value.orig, sqlite3.OperationalError)
    assert raised.value.statement == "SELECT * FROM nowhere"
    assert raised.value.__cause__ is raised.value.orig


def test_other_errors_and_success_pass_through() -> None:
    with pytest.raises(KeyError), DriverErrors(sqlite3.Error):
        raise KeyError("not the driver's")
    with DriverErrors(sqlite3.Error):
        found = sqlite3.connect(":memory:").execute("SELECT 1").fetchone()
    assert found == (1,)


async def test_only_the_database_s_condition_comes_out_as_a_storage_error(tmp_path: Path) -> None:
    """storage.sqlpart.DatabaseTrouble: a lock held past the busy timeout is the database's
    condition, a StorageError in words with the driver's error as its cause, whether the
    driver raised it or SQLAlchemy wrapped it; sqlite3 says OperationalError of a mistake
    in SQL too, and that goes on as raised (its result code tells them apart)."""
    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLStore)
    await store.initialize()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(path, timeout=0)
    try:
        for wrapped in (False, True):
            with (
                pytest.raises(StorageError) as raised,
                DatabaseTrouble("write", store._trouble),
                DriverErrors(sqlite3.Error) if wrapped else contextlib.nullcontext(),
            ):
                waiter.execute("INSERT INTO executions (id) VALUES ('x')")
            assert str(raised.value) == f"the database could not write: {LOCKED}"
            assert isinstance(raised.value.__cause__, DBAPIError if wrapped else sqlite3.Error)
        mistake = sqlite3.connect(":memory:")
        with (
            pytest.raises(DBAPIError),
            DatabaseTrouble("read", store._trouble),
            DriverErrors(sqlite3.Error),
        ):
            mistake.execute("SELECT * FROM nowhere")
        mistake.close()
        with pytest.raises(KeyError), DatabaseTrouble("read", store._trouble):
            raise KeyError("not the database's")
    finally:
        waiter.close()
        holder.close()
        await store.close()


async def test_a_missing_table_or_column_is_a_schema_mismatch_and_nothing_else_is(
    db_url: str,
) -> None:
    """storage.sqlpart.schema_mismatch, on both databases' own errors: what `flowledger db
    upgrade` may mend (the CLI advises it for those only)."""
    store = open_store(db_url)
    assert isinstance(store, SQLStore)
    await store.initialize()

    def error_of(sql: str) -> DBAPIError:
        with pytest.raises(DBAPIError) as raised, store.conn.begin():
            store.conn.execute(text(sql))
        return raised.value

    # One thread for every statement: ``store.conn`` is a connection per thread, and the
    # default executor may start a thread per call on a busy machine, each connection
    # kept until the store closes, until the store's pool was exhausted (a 30 s wait and
    # a TimeoutError in one CI run).
    one_thread = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    try:
        missing = [
            "SELECT * FROM no_such_table",
            "SELECT no_such_column FROM executions",
            "INSERT INTO flowledger_meta (key, value, no_such_column) VALUES ('k', 'v', 1)",
        ]
        others = ["SELECT 1 FROM", "INSERT INTO flowledger_meta (key) VALUES (NULL)"]
        for sql in missing:
            assert schema_mismatch(await loop.run_in_executor(one_thread, error_of, sql)), sql
        for sql in others:
            found = await loop.run_in_executor(one_thread, error_of, sql)
            assert not schema_mismatch(found), sql
    finally:
        one_thread.shutdown()
        await store.close()
