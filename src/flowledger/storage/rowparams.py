"""The column order of the round's hot rows, which the journal builds as driver parameters.

A round writes, per step, a step row (inserted or updated) and its events. Building a
dict per row and then picking its values into a tuple for the driver cost more than the
rest of the write path together, so the journal (runtime.journal) builds the tuples
itself, in the orders below, with timestamps already in the stored form
(``Store.timestamp_param``). ``storage.writes`` names these columns in its SQL, and still accepts
a dict per row (other callers, tests), picked into the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flowledger.storage.base import Row, RowParams

#: What can change in a written step row (never its key columns, ``attempt`` included:
#: an UPDATE naming an indexed column rewrites that index's entry).
STEP_CHANGING = (
    "status",
    "started_at",
    "completed_at",
    "failed_at",
    "due_at",
    "wake_at",
    "suspended",
    "output",
    "error",
    "state",
    "children",
)
#: A new step row: every column, those set once first.
STEP_INSERT = (
    "id",
    "execution_id",
    "seq",
    "step_id",
    "step_path",
    "loop_key",
    "type",
    "attempt",
    "idempotency_key",
    "input",
    *STEP_CHANGING,
)
#: An update of a step row, its id (the WHERE) last; with ``input`` when an attempt that
#: was written before it started (a retry) now has one.
STEP_UPDATE = (*STEP_CHANGING, "id")
STEP_UPDATE_INPUT = (*STEP_CHANGING, "input", "id")
#: The update a tuple of each length is (they differ by ``input``).
STEP_UPDATES = {len(STEP_UPDATE): STEP_UPDATE, len(STEP_UPDATE_INPUT): STEP_UPDATE_INPUT}
#: An event row.
EVENT = (
    "execution_id",
    "seq",
    "at",
    "kind",
    "step_execution_id",
    "step_id",
    "attempt",
    "status",
    "detail",
)


def event_rows(
    params: Sequence[RowParams], instants: Sequence[datetime], loops: Sequence[str | None]
) -> list[Row]:
    """Events as rows (dicts), ``at`` the instant itself rather than its stored form, with
    each step event's ``loop_key`` as a read of the history joins it: what observers read."""
    rows = []
    for values, at, loop_key in zip(params, instants, loops, strict=True):
        row = dict(zip(EVENT, values, strict=True)) if isinstance(values, tuple) else {**values}
        row["at"] = at
        row["loop_key"] = loop_key
        rows.append(row)
    return rows
