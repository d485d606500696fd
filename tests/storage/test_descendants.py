"""The executions below an execution: a family's progress in one read."""

from __future__ import annotations

from sqlalchemy import insert

from flowledger.storage.schema import executions
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import execution_row


def _tree(store: SQLStore) -> None:
    """root -> head -> (a -> a1, b); root -> sibling; and an execution of its own."""
    rows = [
        execution_row(id="root", runtime_status="InProgress", event_seq=9),
        execution_row(
            id="head", parent_id="root", root_id="root", runtime_status="InProgress", event_seq=4
        ),
        execution_row(
            id="a", parent_id="head", root_id="root", runtime_status="Completed", event_seq=7
        ),
        execution_row(id="b", parent_id="head", root_id="root", runtime_status="NotStarted"),
        execution_row(
            id="a1", parent_id="a", root_id="root", runtime_status="AwaitingUserInput", event_seq=2
        ),
        execution_row(id="sibling", parent_id="root", root_id="root", event_seq=1),
        execution_row(id="alone", event_seq=3),
    ]
    with store.conn.begin():
        store.conn.execute(insert(executions), rows)


async def test_a_familys_progress_is_its_head_and_everything_below_it(store: SQLStore) -> None:
    _tree(store)
    rows = await store.family_progress("head")
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {"head", "a", "b", "a1"}  # not its parent, sibling or strangers
    assert by_id["a1"] == {
        "id": "a1",
        "parent_id": "a",
        "runtime_status": "AwaitingUserInput",
        "event_seq": 2,
    }
    assert [by_id[m]["event_seq"] for m in ("head", "a", "b")] == [4, 7, 0]
    assert {row["id"] for row in await store.family_progress("root")} == {
        "root", "head", "a", "b", "a1", "sibling"
    }  # fmt: skip
    assert [row["id"] for row in await store.family_progress("alone")] == ["alone"]
    assert await store.family_progress("gone") == []
