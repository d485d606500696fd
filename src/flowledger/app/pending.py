"""What an execution was sent (a cancel, an input) and has not taken yet: its document's
``pendingSignals``, for every read of one execution (the API's, the web page's, a control
verb's answer).

Before (tour 19), only a control verb's 202 answer said so: with no worker, a cancel
from the web UI or the API left the execution's page and document as they were, and a
user could not tell "recorded, waiting for a worker" from "nothing happened".
"""

from __future__ import annotations

from typing import Literal, cast

from typing_extensions import TypedDict

from flowledger.runtime.engine import Engine
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage.base import Row
from flowledger.timeutil import iso
from flowledger.types import ExecutionDocument

#: The signals people send (the others are children telling their parent they moved).
SENT_BY_PEOPLE = ("cancel", "input")


class PendingSignal(TypedDict):
    """A cancel or an input recorded for an execution, not taken by a runner yet."""

    kind: Literal["cancel", "input"]
    #: The step an input answers; None for a cancel.
    stepId: str | None
    by: str
    at: str


def signals_waiting(row: Row) -> bool:
    """The execution goes on and its row counts signals it has not taken: worth reading
    which (any kind; the counters are on the row every read has already)."""
    if ExecutionStatus(row["runtime_status"]).terminal:
        return False  # nothing takes them any more
    return int(row.get("signals_sent") or 0) > int(row.get("signals_taken") or 0)


async def pending_signals(engine: Engine, row: Row) -> list[PendingSignal]:
    """The cancels and inputs recorded for the execution of ``row`` and not taken yet,
    oldest first: one indexed read of its unconsumed signals, and only when its row
    counts some (:func:`signals_waiting`); none for an execution that ended."""
    if not signals_waiting(row):
        return []
    return [
        {
            "kind": cast(Literal["cancel", "input"], signal["kind"]),
            "stepId": signal["step_id"],
            "by": str(signal["created_by"]),
            "at": iso(signal["created_at"]),
        }
        for signal in await engine.store.pending_signals(str(row["id"]))
        if signal["kind"] in SENT_BY_PEOPLE
    ]


async def document_of(
    engine: Engine, row: Row, steps: list[Row]
) -> tuple[ExecutionDocument, list[PendingSignal]]:
    """The execution's document from its rows, with ``pendingSignals`` (how many cancels
    and inputs it has not taken yet) when there are any; and those signals."""
    document = await engine.document(row, steps)
    signals = await pending_signals(engine, row)
    if signals:
        document["pendingSignals"] = len(signals)
    return document, signals
