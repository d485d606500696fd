"""One transaction as one libpq pipeline (storage.pgpipe, through storage.pgloop's
connection): what it writes, what it raises, and the connection it leaves behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from flowledger.storage.pgloop import LoopConnection
from flowledger.storage.pgpipe import _numbered
from tests.storage.conftest import admin

pytestmark = pytest.mark.postgresql

INSERT = "INSERT INTO pipe_rows (id, body, n, at, flag) VALUES (%s, %s, %s, %s, %s)"
BUMP = "UPDATE pipe_rows SET n = n + %s WHERE id = ANY(%s)"


@pytest.fixture
async def conn(pg_url: str) -> AsyncIterator[LoopConnection]:
    with admin(pg_url) as setup:
        setup.execute(
            "CREATE TABLE pipe_rows (id text PRIMARY KEY, body text, n bigint, "
            "at timestamptz, flag boolean)"
        )

    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(pg_url, autocommit=True)

    loop_conn = LoopConnection(connect)
    yield loop_conn
    await loop_conn.close()


def _rows(url: str) -> list[tuple[Any, ...]]:
    with admin(url) as conn:
        return conn.execute("SELECT id, body, n, at, flag FROM pipe_rows ORDER BY id").fetchall()


async def test_every_row_of_every_statement_is_written_as_given(
    conn: LoopConnection, pg_url: str
) -> None:
    at = datetime(2026, 12, 2, 11, 0, 0, 123456, tzinfo=UTC)
    rows = [(f"r{i}", f"body {i} ünï", i, at, i % 2 == 0) for i in range(3)]
    rows.append(("none", None, None, None, None))
    await conn.pipeline([(INSERT, rows), (BUMP, [(10, ["r0", "r2"])])])
    assert _rows(pg_url) == [
        ("none", None, None, None, None),
        ("r0", "body 0 ünï", 10, at, True),
        ("r1", "body 1 ünï", 1, at, False),
        ("r2", "body 2 ünï", 12, at, True),
    ]


async def test_a_group_bigger_than_the_socket_takes_goes_out_whole(
    conn: LoopConnection, pg_url: str
) -> None:
    # ~24 MB: libpq's buffer is flushed in parts, waiting for the socket in between.
    body = "x" * 12_000
    rows = [(f"r{i:05d}", body, i, None, None) for i in range(2_000)]
    await conn.pipeline([(INSERT, rows)])
    with admin(pg_url) as check:
        count, total = check.execute("SELECT count(*), sum(length(body)) FROM pipe_rows").fetchone()
    assert (count, total) == (2_000, 2_000 * 12_000)


async def test_a_refused_statement_raises_psycopgs_error_and_commits_nothing(
    conn: LoopConnection, pg_url: str
) -> None:
    await conn.pipeline([(INSERT, [("taken", "first", 1, None, None)])])
    with pytest.raises(psycopg.errors.UniqueViolation):
        await conn.pipeline(
            [(INSERT, [("new", "b", 2, None, None), ("taken", "again", 3, None, None)])]
        )
    assert [r[0] for r in _rows(pg_url)] == ["taken"]
    # The failed transaction was rolled back: the same connection writes the next group.
    await conn.pipeline([(INSERT, [("later", "c", 4, None, None)])])
    assert [r[0] for r in _rows(pg_url)] == ["later", "taken"]


async def test_a_value_that_cannot_be_sent_sends_nothing(conn: LoopConnection, pg_url: str) -> None:
    with pytest.raises(psycopg.DataError):  # PostgreSQL text has no NUL: psycopg says so
        await conn.pipeline(
            [(INSERT, [("ok", "fine", 1, None, None), ("bad", "a\x00b", 2, None, None)])]
        )
    assert _rows(pg_url) == []
    await conn.pipeline([(INSERT, [("ok", "fine", 1, None, None)])])
    assert [r[0] for r in _rows(pg_url)] == ["ok"]


async def test_each_statement_is_prepared_once_per_connection(
    conn: LoopConnection, pg_url: str
) -> None:
    for i in range(5):
        await conn.pipeline([(INSERT, [(f"r{i}", "b", i, None, None)]), (BUMP, [(1, [f"r{i}"])])])
    raw = conn._conn  # the pipe's own session: prepared statements are per session
    assert raw is not None
    cursor = await raw.execute(
        "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'flowledger_%'"
    )
    assert await cursor.fetchone() == (2,)


async def test_sql_that_does_not_parse_is_prepared_again_once_fixed(
    conn: LoopConnection, pg_url: str
) -> None:
    bad = "INSERT INTO no_such_table (id) VALUES (%s)"
    with pytest.raises(psycopg.errors.UndefinedTable):
        await conn.pipeline([(bad, [("a",)])])
    with admin(pg_url) as setup:
        setup.execute("CREATE TABLE no_such_table (id text)")
    await conn.pipeline([(bad, [("a",)])])  # not taken for prepared: prepared now
    with admin(pg_url) as check:
        assert check.execute("SELECT id FROM no_such_table").fetchall() == [("a",)]


def test_placeholders_are_numbered_in_order() -> None:
    assert _numbered("SELECT %s, x = ANY(%s)") == "SELECT $1, x = ANY($2)"
    with pytest.raises(ValueError, match="literal %"):
        _numbered("SELECT '100%' || %s")
