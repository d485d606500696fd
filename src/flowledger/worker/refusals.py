"""Starts a duty refuses: kept as ``Failed`` executions, so ``executions list`` shows them.

A trigger that fires but cannot start its workflow (an entity chain past the depth
limit, an entity trigger's ``when`` that cannot be evaluated for the event, a schedule
whose input breaks ``input_schema``) would otherwise leave only a line in one worker's
log. The execution is created started and failed at once, under the same trigger key a
start would have used, so the refusal is recorded once however many workers race.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowledger.codec import Codec
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage import Row


def refused(row: Row, message: str) -> list[Row]:
    """Make ``row`` a Failed execution (started and failed at once); its two extra events."""
    now = row["created_at"]
    row.update(
        runtime_status=str(ExecutionStatus.FAILED),
        started_at=now,
        failed_at=now,
        error=Codec().dumps({"message": message}),
        event_seq=3,
    )

    def event(seq: int, kind: str, detail: Mapping[str, Any] | None) -> Row:
        return {
            "execution_id": row["id"],
            "seq": seq,
            "at": now,
            "kind": kind,
            "step_execution_id": None,
            "step_id": None,
            "attempt": None,
            "status": None,
            "detail": Codec().dumps(detail),
        }

    return [event(2, "execution.started", None), event(3, "execution.failed", {"error": message})]
