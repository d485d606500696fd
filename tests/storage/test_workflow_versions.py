"""Which stored version a name resolves to (Store.workflow_version_id), on both databases."""

from __future__ import annotations

import json

from flowledger.storage.sql import SQLStore


async def _save(store: SQLStore, name: str, n: int) -> list[str]:
    return [
        (await store.save_workflow_version(name, f"{name}-{i}", json.dumps({"name": name}), 1)).id
        for i in range(n)
    ]


async def test_a_name_resolves_to_its_pushed_version_else_its_newest(store: SQLStore) -> None:
    assert await store.workflow_version_id("nightly") is None
    ids = await _save(store, "nightly", 3)
    other = await _save(store, "other", 4)
    assert await store.workflow_version_id("nightly") == ids[2]  # none pushed: the newest
    await store.activate_workflow("nightly", ids[1])
    assert await store.workflow_version_id("nightly") == ids[1]  # the pushed one, not v3
    await store.activate_workflow("other", other[0])
    assert await store.workflow_version_id("nightly") == ids[1]
    assert await store.workflow_version_id("other") == other[0]


async def test_a_version_number_resolves_to_that_version_or_none(store: SQLStore) -> None:
    ids = await _save(store, "nightly", 3)
    await store.activate_workflow("nightly", ids[2])
    assert [await store.workflow_version_id("nightly", v) for v in (1, 2, 3)] == ids
    assert await store.workflow_version_id("nightly", 9) is None
    assert await store.workflow_version_id("nightly", 2**70) is None  # no column holds it
    assert await store.workflow_version_id("nightly", -(2**31) - 1) is None
    assert await store.workflow_version_id("missing", 1) is None
