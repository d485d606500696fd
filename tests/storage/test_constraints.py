"""The database itself refuses a second recorded completion of one step execution."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from flowledger.errors import LeaseLostError, StorageError
from flowledger.storage import Batch
from flowledger.storage.schema import step_executions
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import new_execution, step_row


async def test_a_raw_insert_of_a_second_completion_is_refused(store: SQLStore) -> None:
    execution_id = await new_execution(store)
    conn = store.conn
    with conn.begin():
        conn.execute(insert(step_executions), [step_row(execution_id, status="Completed")])
    # No claim query, no fence: straight to the table, and still refused.
    second = step_row(execution_id, status="Completed", attempt=2)
    with pytest.raises(IntegrityError), conn.begin():
        conn.execute(insert(step_executions), [second])
    # Flipping a retried attempt to Completed is refused too.
    with conn.begin():
        conn.execute(insert(step_executions), [{**second, "status": "Failed"}])
    with pytest.raises(IntegrityError), conn.begin():
        conn.execute(
            update(step_executions)
            .where(step_executions.c.id == second["id"])
            .values(status="Completed")
        )


async def test_other_iterations_attempts_and_steps_are_free(store: SQLStore) -> None:
    execution_id = await new_execution(store)
    rows = [
        step_row(execution_id, status="Failed", attempt=1),
        step_row(execution_id, status="InProgress", attempt=2),
        step_row(execution_id, status="Completed", attempt=3),
        step_row(execution_id, status="Completed", loop_key="loop:1", step_path="loop/a"),
        step_row(execution_id, status="Completed", loop_key="loop:2", step_path="loop/a"),
        step_row(execution_id, status="Completed", step_path="b", step_id="b"),
    ]
    with store.conn.begin():
        store.conn.execute(insert(step_executions), rows)
    other = await new_execution(store)
    with store.conn.begin():  # the same step in another execution
        store.conn.execute(insert(step_executions), [step_row(other, status="Completed")])
    assert len(await store.get_step_executions(execution_id)) == len(rows)
    assert len(await store.get_step_executions(other)) == 1


async def test_a_committed_double_completion_writes_nothing(store: SQLStore) -> None:
    execution_id = await new_execution(store)
    epoch = await store.acquire_lease(execution_id, "w", timedelta(minutes=5))
    assert epoch is not None
    first = step_row(execution_id, status="Completed")
    await store.commit(Batch(execution_id, epoch, insert_steps=[first]))
    twice = Batch(
        execution_id,
        epoch,
        execution={"runtime_status": "Completed"},
        insert_steps=[step_row(execution_id, status="Completed", attempt=2)],
    )
    with pytest.raises(StorageError, match="record a step twice") as raised:
        await store.commit(twice)
    assert not isinstance(raised.value, LeaseLostError)
    row = await store.get_execution(execution_id)
    assert row is not None and row["runtime_status"] == "NotStarted"
    assert [s["id"] for s in await store.get_step_executions(execution_id)] == [first["id"]]
