"""Pruning's search on both databases (storage.pruning): each status's oldest finished
executions come from the status index in its order, with or without statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, insert

from flowledger.storage.schema import FINISHED, executions
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import T0, execution_row, walks_in_order

BEFORE = T0 + timedelta(days=2)


async def searched(store: SQLStore) -> tuple[list[str], str]:
    """What ``prunable_executions`` finds (a batch of 100), and how the database would run
    the statements it sent (each replayed, the last one explained)."""
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(store._engine, "before_cursor_execute", record)
    try:
        found = await store.prunable_executions(BEFORE, list(FINISHED), 100)
    finally:
        event.remove(store._engine, "before_cursor_execute", record)
    *settings, (search, parameters) = sent
    explain = "EXPLAIN QUERY PLAN" if store.conn.dialect.name == "sqlite" else "EXPLAIN"
    with store.reading() as conn:
        for statement, values in settings:
            conn.exec_driver_sql(statement, values)
        plan = conn.exec_driver_sql(f"{explain} {search}", parameters)
        return found, " / ".join(str(line[-1]) for line in plan)


async def test_a_prune_takes_the_oldest_finished_from_the_status_index(
    store: SQLStore,
) -> None:
    """Before, every batch of a prune sorted every finished execution (SQLite always;
    PostgreSQL until it had statistics of them)."""
    finished = [
        execution_row(runtime_status=FINISHED[i % 4], created_at=at, last_activity_at=at)
        for i in range(10000)
        if (at := T0 + timedelta(seconds=i + 1))
    ]
    running = [execution_row(runtime_status="InProgress", last_activity_at=T0) for _ in range(300)]
    # The oldest of all, but active until now: not yet prunable.
    recent = [execution_row(runtime_status="Completed", last_activity_at=BEFORE) for _ in range(5)]
    for rows in (finished, running, recent):  # a list of rows takes its columns from the first
        with store.conn.begin():
            store.conn.execute(insert(executions), rows)
    oldest = [row["id"] for row in finished[:100]]
    found, plan = await searched(store)
    assert found == oldest
    assert walks_in_order(plan, *["ix_executions_status"] * len(FINISHED)), plan
    with store.conn.begin():
        store.conn.exec_driver_sql("ANALYZE executions")
    found, plan = await searched(store)
    assert found == oldest
    assert walks_in_order(plan, *["ix_executions_status"] * len(FINISHED)), plan
