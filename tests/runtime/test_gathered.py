"""Many executions on one engine (``asyncio.gather`` of ``start`` + ``drive``, or of ``run``):
their lease takes and releases are grouped (storage.leasegroup) as their rounds are
(storage.groupcommit), and each still runs once, under a lease of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from flowledger import Engine, StepContext, step_type
from flowledger.errors import HeldElsewhereError, LeaseLostError, NotFoundError
from flowledger.storage.leasegroup import LeaseAnswer, LeaseWork
from flowledger.storage.pgstarts import StartWriter
from flowledger.storage.sql import SQLStore

COUNT = 30

THREE = """
name: three
steps:
  - {id: a, type: test.owned, input: {n: 1}}
  - {id: b, type: test.owned, input: {n: "{{ steps.a.output.n + 1 }}"}}
  - {id: c, type: test.owned, input: {n: "{{ steps.b.output.n + 1 }}"}}
"""
CRASHING = """
name: crashing
steps:
  - {id: a, type: test.crash, input: {value: 1}}
"""


GATED = """
name: gated
steps:
  - {id: a, type: test.gated, input: {n: 1}}
"""


class Numbered(BaseModel):
    n: int


def owned_step(engine: Engine, seen: list[tuple[str, str, Any]]) -> None:
    """A step that records, as it runs, who the database says holds its execution."""

    @step_type("test.owned")
    async def owned(data: Numbered, ctx: StepContext) -> dict[str, int]:
        row = await engine.store.get_execution(ctx.execution_id)
        assert row is not None
        seen.append((ctx.execution_id, ctx.step_id, (row["lease_owner"], row["lease_epoch"])))
        return {"n": data.n}

    engine.registry.register(owned)


def group_sizes(engine: Engine) -> list[tuple[int, int]]:
    """How many new executions and takes each of the store's lease calls (and, on
    PostgreSQL, each of its groups of starts) carried."""
    store = engine.store
    assert isinstance(store, SQLStore)
    sizes: list[tuple[int, int]] = []
    group = store._lease_group
    apply = group._apply

    def recorded(works: list[LeaseWork]) -> list[LeaseAnswer]:
        creates = sum(1 for w in works if w.create is not None)
        sizes.append((creates, sum(1 for w in works if w.take is not None)))
        return apply(works)

    group._apply = recorded
    starts = getattr(store, "_starts", None)
    if isinstance(starts, StartWriter):  # PostgreSQL's starts group apart (storage.pgstarts)
        write = starts._write

        async def written(started: list[Any]) -> bool:
            sizes.append((len(started), 0))
            return await write(started)

        starts._write = written  # type: ignore[method-assign]
    return sizes


async def test_gathered_start_and_drive_run_each_execution_once_under_its_own_lease(
    engine: Engine,
) -> None:
    seen: list[tuple[str, str, Any]] = []
    owned_step(engine, seen)
    workflow = engine.load_text(THREE)
    await engine.run(workflow)  # the version row, stored once
    seen.clear()
    sizes = group_sizes(engine)

    async def one() -> tuple[str, dict[str, Any]]:
        execution_id = await engine.start(workflow)
        return execution_id, await engine.drive(execution_id)

    done = await asyncio.gather(*(one() for _ in range(COUNT)))
    ids = [execution_id for execution_id, _ in done]
    assert len(set(ids)) == COUNT
    for execution_id, doc in done:
        assert doc["id"] == execution_id and doc["runtimeStatus"] == "Completed"
        assert sorted(s["outputData"]["n"] for s in doc["steps"].values()) == [1, 2, 3]
    # Every step ran exactly once, each while the database said this engine held its
    # execution under the one epoch its drive took.
    assert sorted((e, s) for e, s, _ in seen) == sorted((e, s) for e in ids for s in "abc")
    assert {holder for _, _, holder in seen} == {(engine.owner, 1)}
    # The starts and the takes were grouped: fewer store calls than executions.
    for made in zip(*sizes, strict=True):
        assert sum(made) == COUNT and max(made) > 1
    for execution_id in ids:
        row = await engine.store.get_execution(execution_id)
        assert row is not None and row["lease_owner"] is None and row["lease_epoch"] == 1
    assert (
        engine._drives.leases.keeper is None and engine._drives.driving == 0
    )  # the heartbeat stopped


async def test_gathered_runs_each_complete_once(engine: Engine) -> None:
    seen: list[tuple[str, str, Any]] = []
    owned_step(engine, seen)
    workflow = engine.load_text(THREE)
    docs = await asyncio.gather(*(engine.run(workflow) for _ in range(COUNT)))
    assert [d["runtimeStatus"] for d in docs] == ["Completed"] * COUNT
    assert all(len(d["steps"]) == 3 for d in docs)
    ids = {d["id"] for d in docs}
    assert sorted((e, s) for e, s, _ in seen) == sorted((e, s) for e in ids for s in "abc")
    assert {holder for _, _, holder in seen} == {(engine.owner, 1)}


async def test_a_bad_execution_in_a_group_does_not_fail_its_neighbours(engine: Engine) -> None:
    seen: list[tuple[str, str, Any]] = []
    owned_step(engine, seen)
    good = engine.load_text(THREE)
    crashing = engine.load_text(CRASHING)
    good_ids = [await engine.start(good) for _ in range(COUNT)]
    crash_id = await engine.start(crashing)
    held_id = await engine.start(good)
    # Another process runs this one right now.
    assert await engine.store.acquire_lease_row(held_id, "elsewhere", engine.lease) is not None
    sizes = group_sizes(engine)
    asked = [*good_ids[:10], crash_id, "no-such-execution", held_id, *good_ids[10:]]
    outcomes = await asyncio.gather(
        *(engine.drive(i, document=False) for i in asked), return_exceptions=True
    )
    by_id = dict(zip(asked, outcomes, strict=True))
    assert isinstance(by_id["no-such-execution"], NotFoundError)
    assert isinstance(by_id[held_id], HeldElsewhereError)
    assert by_id[crash_id] == {"id": crash_id, "runtimeStatus": "Failed"}
    for execution_id in good_ids:
        assert by_id[execution_id] == {"id": execution_id, "runtimeStatus": "Completed"}
    assert sorted(e for e, _, _ in seen) == sorted(e for e in good_ids for _ in "abc")
    assert max(takes for _, takes in sizes) > 1  # the bad ones were in groups with good ones
    held = await engine.store.get_execution(held_id)
    assert held is not None and held["lease_owner"] == "elsewhere"
    assert held["runtime_status"] == "NotStarted"


async def test_a_lost_lease_stops_only_its_own_drive(engine: Engine) -> None:
    """The drives on one engine share one heartbeat; one that finds its lease taken over
    stops that execution's drive alone."""
    started: list[str] = []
    both = asyncio.Event()
    gate = asyncio.Event()

    @step_type("test.gated")
    async def gated(data: Numbered, ctx: StepContext) -> dict[str, int]:
        started.append(ctx.execution_id)
        if len(started) == 2:
            both.set()
        await gate.wait()
        return {"n": data.n}

    engine.registry.register(gated)
    workflow = engine.load_text(GATED)
    kept, lost = [await engine.start(workflow) for _ in range(2)]
    drives = [asyncio.create_task(engine.drive(i, document=False)) for i in (kept, lost)]
    await asyncio.wait_for(both.wait(), 30)
    # Another process takes one over (its holder known dead, say); the next beat sees it.
    assert await engine.store.acquire_lease(lost, "thief", engine.lease, steal_from=engine.owner)
    assert engine._drives.leases.keeper is not None
    await engine._drives.leases.keeper.beat()
    with pytest.raises(LeaseLostError):
        await drives[1]
    gate.set()
    assert await drives[0] == {"id": kept, "runtimeStatus": "Completed"}
    row = await engine.store.get_execution(lost)
    assert row is not None and row["lease_owner"] == "thief" and row["lease_epoch"] == 2
    assert engine._drives.leases.keeper is None and not engine._drives.leases.losers
