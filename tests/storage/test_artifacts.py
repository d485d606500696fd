"""The artifacts table and its verbs, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flowledger.storage.sql import SQLStore
from tests.storage.conftest import T0


def artifact_row(execution_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "execution_id": execution_id,
        "step_execution_id": str(uuid.uuid4()),
        "step_id": "report",
        "name": "report.csv",
        "content_type": "text/csv",
        "size": 5 * 1024**3,  # past 32 bits: sizes are BIGINT
        "sha256": "ab" * 32,
        "created_at": T0,
        "kind": "saved",
    }
    return {**row, **overrides}


async def test_added_artifacts_list_per_execution_oldest_first(store: SQLStore) -> None:
    first = artifact_row("e1", name="b.csv")
    second = artifact_row("e1", name="a.csv", created_at=T0 + timedelta(seconds=1))
    other = artifact_row("e2")
    for row in (second, other, first):
        store.add_artifact(row)
    listed = await store.list_artifacts("e1")
    assert [r["name"] for r in listed] == ["b.csv", "a.csv"]
    assert listed[0] == first  # every column round-trips, the timestamp as aware UTC
    assert await store.list_artifacts("nobody") == []


async def test_get_artifact_by_id(store: SQLStore) -> None:
    row = artifact_row("e1", step_execution_id=None, step_id=None, kind="output")
    store.add_artifact(row)
    assert await store.get_artifact(row["id"]) == row
    assert await store.get_artifact(str(uuid.uuid4())) is None
