"""ChildGuard: a commit creates a sub-workflow step's new children only while the step's
failed children are within its tolerance, whenever the failure committed."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest

from flowledger.storage import Batch, ExecutionQuery
from flowledger.storage.base import ChildGuard
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import T0, execution_row, new_execution, step_row

LEASE = timedelta(minutes=5)


async def _parent_with_a_child(store: SQLStore) -> tuple[str, int, str, int, str]:
    """A leased parent and its leased child of step execution ``step``: their ids and
    epochs, and the step execution's id."""
    parent_id = await new_execution(store)
    parent_epoch = await store.acquire_lease(parent_id, "w", LEASE)
    step = str(uuid.uuid4())
    child_id = await new_execution(
        store, parent_id=parent_id, trigger_key=f"child:{step}:0", runtime_status="InProgress"
    )
    child_epoch = await store.acquire_lease(child_id, "w", LEASE)
    assert parent_epoch is not None and child_epoch is not None
    return parent_id, parent_epoch, child_id, child_epoch, step


def _child_ends(child_id: str, epoch: int, parent_id: str, status: str) -> Batch:
    """The child's final round: its status, and the signal that tells its parent."""
    signal = {
        "id": str(uuid.uuid4()),
        "execution_id": parent_id,
        "kind": "child_done",
        "step_id": None,
        "payload": json.dumps({"childId": child_id, "status": status}),
        "created_by": f"execution:{child_id}",
        "created_at": T0,
        "consumed_at": None,
    }
    return Batch(child_id, epoch, execution={"runtime_status": status}, signals=[signal])


def _refill(
    parent_id: str, epoch: int, step: str, first: str, tolerated: int, known_failed: int = 0
) -> Batch:
    """The parent's round that lists and creates its step's second child, guarded: the
    first one running as far as the parent knows (or known failed, and another)."""
    new = execution_row(parent_id=parent_id, trigger_key=f"child:{step}:1")
    row = step_row(parent_id, id=step, children=json.dumps([first, new["id"]]))
    guard = ChildGuard(
        known_failed=known_failed,
        running=[first],
        tolerated=tolerated,
        child_ids=[new["id"]],
        step_execution_id=step,
        children_if_refused=json.dumps([first]),
    )
    return Batch(
        parent_id, epoch, insert_steps=[row], create_executions=[new], child_guards=[guard]
    )


async def _children(store: SQLStore, parent_id: str, step: str) -> tuple[int, list[str]]:
    """How many children the parent has, and the ids its step's row lists."""
    rows = [s for s in await store.get_step_executions(parent_id) if s["id"] == step]
    children = await store.list_executions(ExecutionQuery(parent_id=parent_id, limit=10))
    return len(children), json.loads(rows[0]["children"])


@pytest.mark.parametrize("together", [False, True])
async def test_a_failure_committed_first_refuses_the_new_child(
    store: SQLStore, together: bool
) -> None:
    parent_id, parent_epoch, child_id, child_epoch, step = await _parent_with_a_child(store)
    ends = _child_ends(child_id, child_epoch, parent_id, "Failed")
    refill = _refill(parent_id, parent_epoch, step, child_id, tolerated=0)
    if together:  # one group, one transaction: the child's round queued first
        await asyncio.gather(store.commit(ends, group=True), store.commit(refill, group=True))
    else:
        await store.commit(ends)
        await store.commit(refill)
    assert refill.child_guards[0].refused
    assert await _children(store, parent_id, step) == (1, [child_id])


async def test_a_failure_the_parent_knew_of_counts(store: SQLStore) -> None:
    parent_id, parent_epoch, child_id, _, step = await _parent_with_a_child(store)
    refill = _refill(parent_id, parent_epoch, step, child_id, tolerated=1, known_failed=2)
    await store.commit(refill)
    assert refill.child_guards[0].refused
    assert await _children(store, parent_id, step) == (1, [child_id])


@pytest.mark.parametrize(("status", "tolerated"), [("Completed", 0), ("Failed", 1)])
async def test_a_child_within_the_tolerance_is_created(
    store: SQLStore, status: str, tolerated: int
) -> None:
    parent_id, parent_epoch, child_id, child_epoch, step = await _parent_with_a_child(store)
    await store.commit(_child_ends(child_id, child_epoch, parent_id, status))
    refill = _refill(parent_id, parent_epoch, step, child_id, tolerated=tolerated)
    await store.commit(refill)
    assert not refill.child_guards[0].refused
    count, listed = await _children(store, parent_id, step)
    assert count == 2 and listed[0] == child_id and len(listed) == 2
