"""A round's rows as parameter tuples (the journal's) store exactly what dict rows store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flowledger.storage import Batch, Row
from flowledger.storage.rowparams import (
    EVENT,
    STEP_INSERT,
    STEP_INSERT_PLAIN,
    STEP_INSERTS,
    STEP_QUIET,
    STEP_UPDATE,
    STEP_UPDATE_INPUT,
    STEP_UPDATE_PLAIN,
    STEP_UPDATE_PLAIN_INPUT,
    STEP_UPDATES,
    event_rows,
)
from flowledger.storage.schema import events, step_executions
from flowledger.storage.sql import SQLStore
from tests.storage.conftest import T0, event_row, new_execution, step_row

LEASE = timedelta(minutes=5)
LATER = datetime(2026, 11, 22, 10, 0, 1, 250, tzinfo=UTC)


def test_the_layouts_name_every_column_once() -> None:
    assert sorted(STEP_INSERT) == sorted(c.name for c in step_executions.columns)
    assert sorted(EVENT) == sorted(c.name for c in events.columns)
    for layout in (STEP_UPDATE, STEP_UPDATE_INPUT):
        assert layout[-1] == "id" and len(set(layout)) == len(layout)
        assert set(layout) <= set(STEP_INSERT)
        assert not {"execution_id", "step_path", "loop_key", "attempt"} & set(layout)


def test_the_plain_layouts_leave_out_the_quiet_columns_only() -> None:
    assert set(STEP_INSERT) - set(STEP_INSERT_PLAIN) == set(STEP_QUIET)
    assert set(STEP_UPDATE) - set(STEP_UPDATE_PLAIN) == set(STEP_QUIET)
    assert set(STEP_UPDATE_INPUT) - set(STEP_UPDATE_PLAIN_INPUT) == set(STEP_QUIET)
    # Tuples are told apart by their length alone.
    assert len(STEP_INSERTS) == 2 and len(STEP_UPDATES) == 4


async def test_plain_rows_store_what_full_rows_store(store: SQLStore) -> None:
    """A plain insert leaves the quiet columns NULL, and a plain update writes them NULL
    (a step that parked with a wake time, then completed), as the full layouts do."""
    stored = []
    for plain in (False, True):
        execution_id, epoch = await _owned(store)
        step = step_row(execution_id, id=f"s-{plain}", idempotency_key=f"k-{plain}")
        first = Batch(execution_id, epoch, execution={"event_seq": 0})
        first.insert_steps.append(_params(store, step, STEP_INSERT_PLAIN if plain else STEP_INSERT))
        await store.commit(first)
        quiet = {"wake_at": LATER, "due_at": LATER, "state": '{"n": 1}', "error": '{"m": 2}'}
        parked = {**{c: step[c] for c in STEP_UPDATE}, **quiet, "suspended": 1}
        second = Batch(execution_id, epoch, execution={"event_seq": 0})
        second.update_steps.append(_params(store, parked, STEP_UPDATE))
        await store.commit(second)
        [row] = await store.get_step_executions(execution_id)
        assert row["wake_at"] == LATER and row["state"] == '{"n": 1}'
        done = {c: step[c] for c in STEP_UPDATE_INPUT}
        done.update(status="Completed", completed_at=LATER, output='{"x": 1}', input='{"y": 2}')
        third = Batch(execution_id, epoch, execution={"event_seq": 0})
        layout = STEP_UPDATE_PLAIN_INPUT if plain else STEP_UPDATE_INPUT
        third.update_steps.append(_params(store, done, layout))
        await store.commit(third)
        [row] = await store.get_step_executions(execution_id)
        own = ("id", "execution_id", "idempotency_key")
        stored.append({k: v for k, v in row.items() if k not in own})
    assert stored[0] == stored[1]
    assert all(stored[1][c] is None for c in STEP_QUIET)
    assert stored[1]["output"] == '{"x": 1}' and stored[1]["input"] == '{"y": 2}'


def _params(store: SQLStore, row: Row, layout: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(
        store.timestamp_param(row[c]) if isinstance(row[c], datetime) else row[c] for c in layout
    )


async def _owned(store: SQLStore) -> tuple[str, int]:
    execution_id = await new_execution(store)
    epoch = await store.acquire_lease(execution_id, "w", LEASE)
    assert epoch is not None
    return execution_id, epoch


async def test_tuples_and_dicts_store_the_same_rows(store: SQLStore) -> None:
    stored = []
    for as_tuples in (False, True):
        execution_id, epoch = await _owned(store)
        step = step_row(execution_id, id=f"s-{as_tuples}", idempotency_key=f"k-{as_tuples}")
        event = event_row(execution_id, 1, step_execution_id=step["id"], attempt=1)
        first = Batch(execution_id, epoch, execution={"event_seq": 1})
        first.insert_steps.append(_params(store, step, STEP_INSERT) if as_tuples else step)
        first.events.append(_params(store, event, EVENT) if as_tuples else event)
        await store.commit(first)
        changed = {c: step[c] for c in STEP_UPDATE}
        changed.update(status="Completed", completed_at=LATER, output='{"x": 1}')
        with_input = {**changed, "input": '{"y": 2}'}
        second = Batch(execution_id, epoch, execution={"event_seq": 2})
        if as_tuples:  # both shapes of update, one after the other in one round
            second.update_steps.append(_params(store, changed, STEP_UPDATE))
            second.update_steps.append(_params(store, with_input, STEP_UPDATE_INPUT))
        else:
            second.update_steps.extend([changed, with_input])
        second.events.append(
            _params(store, event_row(execution_id, 2, at=LATER), EVENT)
            if as_tuples
            else event_row(execution_id, 2, at=LATER)
        )
        await store.commit(second)
        [row] = await store.get_step_executions(execution_id)
        found = await store.get_events(execution_id)
        own = ("id", "execution_id", "idempotency_key", "step_execution_id")
        stored.append(
            (
                {k: v for k, v in row.items() if k not in own},
                [{k: v for k, v in e.items() if k not in own} for e in found],
            )
        )
    assert stored[0] == stored[1]
    step_stored, events_stored = stored[1]
    assert step_stored["completed_at"] == LATER and step_stored["input"] == '{"y": 2}'
    assert [e["at"] for e in events_stored] == [T0, LATER]


def test_event_rows_carry_the_instant_not_its_stored_text() -> None:
    text = "2026-11-22 10:00:01.000250"
    params = [("e", 1, text, "step.started", "s", "a", 1, "InProgress", None)]
    [row] = event_rows(params, [LATER], ["each:2"])
    assert row == {
        "execution_id": "e",
        "seq": 1,
        "at": LATER,
        "kind": "step.started",
        "step_execution_id": "s",
        "step_id": "a",
        "attempt": 1,
        "status": "InProgress",
        "detail": None,
        "loop_key": "each:2",
    }
