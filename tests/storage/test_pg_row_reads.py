"""PostgreSQL's execution rows asked for together are read together (storage.coalesce):
what ``drive`` reads first, so executions driven together stay together."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

import pytest

from flowledger.storage.postgres import PostgresStore
from tests.storage.conftest import new_execution

pytestmark = pytest.mark.postgresql


async def test_rows_asked_for_together_equal_each_read_alone(pg: PostgresStore) -> None:
    ids = [await new_execution(pg, correlation_id=f"c{n}") for n in range(5)]
    asked = [*ids, "no-such-execution"]
    alone = [await pg.get_execution(i) for i in asked]
    reads: list[tuple[str, ...]] = []
    read_many = pg._rows._read_many

    def recorded(keys: Collection[str]) -> Mapping[str, Any]:
        reads.append(tuple(keys))
        return read_many(keys)

    pg._rows._read_many = recorded  # type: ignore[method-assign]
    together = await asyncio.gather(*(pg.get_execution(i) for i in asked))
    assert together == alone
    assert alone[-1] is None
    assert [row["correlation_id"] for row in alone[:-1] if row] == [f"c{n}" for n in range(5)]
    assert sorted(k for keys in reads for k in keys) == sorted(asked)
    assert len(reads) < len(asked)  # rows shared a read
