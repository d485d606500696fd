"""PostgreSQL's execution rows, and the versions starts by name run, asked for together
are read together (storage.coalesce): what ``drive`` reads first, so executions driven
together stay together; what every start by name reads."""

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


async def test_versions_asked_for_together_share_a_read(pg: PostgresStore) -> None:
    """Many clients starting one workflow by name at once read its version once."""
    first = await pg.save_workflow_version("w", "one", '{"name": "w"}', 1)
    second = await pg.save_workflow_version("w", "two", '{"name": "w"}', 1)
    asked = [("w", None)] * 6 + [("w", 1), ("w", 9), ("none", None)]
    alone = [await pg.workflow_version_id(*key) for key in asked]
    reads: list[tuple[tuple[str, int | None], ...]] = []
    read_many = pg._version_ids._read_many

    def recorded(keys: Collection[tuple[str, int | None]]) -> Mapping[Any, str]:
        reads.append(tuple(keys))
        return read_many(keys)

    pg._version_ids._read_many = recorded  # type: ignore[method-assign]
    together = await asyncio.gather(*(pg.workflow_version_id(*key) for key in asked))
    assert together == alone == [second.id] * 6 + [first.id, None, None]
    assert len(reads) < len(set(asked))
