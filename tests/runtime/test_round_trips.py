"""The engine's store round trips per run: each is a thread hop (storage.lanes), so a
short execution is dominated by how many it makes. These tests pin the shortcuts the
engine takes and what they rely on."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowledger import Engine
from flowledger.storage import Store

SMALL = """
name: small
steps:
  - {id: a, type: sys.transform, input: {value: 1}}
  - {id: b, type: sys.transform, input: {value: "{{ steps.a.output + 1 }}"}}
"""


class Counting:
    """Wraps a store's methods to count the calls the engine makes."""

    def __init__(self, store: Store, names: list[str]) -> None:
        self.calls: list[str] = []
        for name in names:
            original = getattr(store, name)

            async def counted(*args: Any, _o: Any = original, _n: str = name, **kw: Any) -> Any:
                self.calls.append(_n)
                return await _o(*args, **kw)

            setattr(store, name, counted)


async def test_a_held_row_is_what_the_database_holds(engine: Engine) -> None:
    # Engine.run drives the row it created (leased to itself) without reading it back.
    workflow = engine.load_text(SMALL)
    execution_id, row = await engine._starts.create(
        workflow, {}, correlation_id=None, created_by="python", hold=True
    )
    assert execution_id == row["id"]
    assert await engine.store.get_execution(execution_id) == row


async def test_a_start_answers_with_the_stored_document_without_reading_it(
    engine: Engine,
) -> None:
    workflow = engine.load_text(SMALL)
    await engine.run(workflow)  # the version row is stored and cached
    counting = Counting(engine.store, ["get_execution", "read_execution"])
    for hold in (False, True):
        doc = await engine.start_document(
            workflow, {"n": 1, "text": "é ' \\"}, correlation_id="c-1", created_by="api", hold=hold
        )
        assert counting.calls == []
        assert doc == await engine.get_execution(str(doc["id"]))
        assert doc["runtimeStatus"] == "NotStarted" and doc["correlationId"] == "c-1"
        counting.calls.clear()


async def test_run_takes_two_store_calls_besides_its_rounds(engine: Engine) -> None:
    workflow = engine.load_text(SMALL)
    await engine.run(workflow)  # the version row is stored and cached
    names = [
        "get_execution",
        "get_step_executions",
        "acquire_lease",
        "acquire_lease_row",
        "release_lease",
        "release_lease_row",
        "create_execution",
        "read_execution",
    ]
    counting = Counting(engine.store, names)
    doc = await engine.run(workflow)
    assert doc["runtimeStatus"] == "Completed"
    assert sorted(s["outputData"] for s in doc["steps"].values()) == [1, 2]
    # The document: the row and its steps in one read (a point read, inline on SQLite).
    # No release: the round that completed the execution cleared its lease.
    assert counting.calls == ["create_execution", "read_execution"]
    row = await engine.store.get_execution(str(doc["id"]))
    assert row is not None and row["lease_owner"] is None and row["lease_expires_at"] is None


async def test_drive_takes_the_lease_and_the_row_in_one_call(engine: Engine) -> None:
    workflow = engine.load_text(SMALL)
    execution_id = await engine.start(workflow)
    counting = Counting(
        engine.store,
        ["get_execution", "acquire_lease", "acquire_lease_row", "release_lease_row"],
    )
    done = await engine.drive(execution_id, document=False)
    assert done == {"id": execution_id, "runtimeStatus": "Completed"}
    assert counting.calls == ["get_execution", "acquire_lease_row"]
    row = await engine.store.get_execution(execution_id)
    assert row is not None and row["lease_owner"] is None and row["lease_epoch"] == 1


async def test_a_heartbeat_after_the_last_round_does_not_take_the_lease_for_lost(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The round that ends an execution clears its lease; a renewal answered after that
    round (still inside the drive) must not count the execution as lost. The keeper stops
    renewing it before that round is committed (Journal.on_release)."""
    workflow = engine.load_text(SMALL)
    store = engine.store
    commit = store.commit
    beats: list[set[str]] = []

    async def commit_then_beat(batch: Any, **kw: Any) -> None:
        await commit(batch, **kw)
        if batch.execution.get("runtime_status") == "Completed":
            keeper = engine._drives.leases.keeper
            assert keeper is not None  # the drive still holds its heartbeat here
            beats.append(set(keeper.held))
            await keeper.beat()  # the renewal of whatever is still held, answered now

    store.commit = commit_then_beat  # type: ignore[method-assign]
    doc = await engine.run(workflow)
    assert doc["runtimeStatus"] == "Completed"
    assert beats == [set()]  # nothing left to renew once the last round was sent
    assert "lost the lease" not in caplog.text
    row = await store.get_execution(str(doc["id"]))
    assert row is not None and row["lease_owner"] is None and row["lease_epoch"] == 1


ASYNC_STEPS = """
name: async_steps
steps:
  - {id: a, type: test.echo, input: {value: 1}}
  - {id: b, type: test.echo, input: {value: 2}}
"""


async def test_runs_gathered_on_one_engine_share_commits_and_a_lone_run_does_not(
    engine: Engine,
) -> None:
    workflow = engine.load_text(ASYNC_STEPS)
    await engine.run(workflow)
    groups: list[bool] = []
    original = engine.store.commit

    async def recorded(batch: Any, *, group: bool = False) -> None:
        groups.append(group)
        await original(batch, group=group)

    engine.store.commit = recorded  # type: ignore[method-assign]
    await engine.run(workflow)
    assert groups and not any(groups)  # alone: committed at once, no group to wait for
    groups.clear()
    docs = await asyncio.gather(*(engine.run(workflow) for _ in range(10)))
    assert [d["runtimeStatus"] for d in docs] == ["Completed"] * 10
    assert any(groups)  # together: their rounds joined group commits, as a worker's do
    assert engine._drives.driving == 0
