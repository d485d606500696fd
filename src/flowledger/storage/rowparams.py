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

#: The changing columns most attempts leave NULL: set only when a step fails, is due,
#: parks, keeps a state or starts children. The "plain" layouts below leave them out
#: (an insert lets them default to NULL, an update writes a literal NULL): sqlite3
#: sends every None parameter through its adaptation protocol, ~1.1k instructions each,
#: and a chain's round wrote 14 of them.
STEP_QUIET = ("failed_at", "due_at", "wake_at", "error", "state", "children")
STEP_CHANGING_PLAIN = tuple(c for c in STEP_CHANGING if c not in STEP_QUIET)
STEP_INSERT_PLAIN = tuple(c for c in STEP_INSERT if c not in STEP_QUIET)
STEP_UPDATE_PLAIN = (*STEP_CHANGING_PLAIN, "id")
STEP_UPDATE_PLAIN_INPUT = (*STEP_CHANGING_PLAIN, "input", "id")

#: The layout an insert tuple of each length is, and an update tuple's with the columns
#: it sets to NULL (the layouts' lengths all differ).
STEP_INSERTS = {len(STEP_INSERT): STEP_INSERT, len(STEP_INSERT_PLAIN): STEP_INSERT_PLAIN}
STEP_UPDATES: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    len(STEP_UPDATE): (STEP_UPDATE, ()),
    len(STEP_UPDATE_INPUT): (STEP_UPDATE_INPUT, ()),
    len(STEP_UPDATE_PLAIN): (STEP_UPDATE_PLAIN, STEP_QUIET),
    len(STEP_UPDATE_PLAIN_INPUT): (STEP_UPDATE_PLAIN_INPUT, STEP_QUIET),
}
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
