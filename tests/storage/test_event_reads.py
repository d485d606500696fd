"""Reads of an execution's events: the instant of its last event of a kind."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert

from flowledger.storage.schema import events, executions
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import T0, execution_row


async def test_the_last_event_of_a_kind_is_the_newest_by_seq(store: SQLStore) -> None:
    kinds = ["execution.started", "execution.awaiting_input", "execution.resumed",
             "execution.awaiting_input", "step.started"]  # fmt: skip
    rows = [
        {"execution_id": "x", "seq": seq, "at": T0 + timedelta(minutes=seq), "kind": kind}
        for seq, kind in enumerate(kinds, start=1)
    ]
    with store.conn.begin():
        store.conn.execute(insert(executions), [execution_row(id="x"), execution_row(id="y")])
        store.conn.execute(insert(events), rows)
    announced = await store.last_event_at("x", "execution.awaiting_input")
    assert announced == T0 + timedelta(minutes=4)  # aware UTC, as written
    assert announced is not None and announced.utcoffset() == timedelta(0)
    assert await store.last_event_at("x", "execution.completed") is None
    assert await store.last_event_at("y", "execution.awaiting_input") is None
    assert await store.last_event_at("nobody", "execution.started") is None
