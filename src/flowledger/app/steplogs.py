"""Step logs: what step handlers logged through ``ctx.logger`` (runtime.steplogs), read
back per execution, per step, and live while it runs (``executions logs --follow``,
``GET /executions/{id}/logs``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from flowledger.app.changes import RECHECK, ChangeHub
from flowledger.app.limits import page_size
from flowledger.app.models import FollowStepLogs, ListStepLogs
from flowledger.app.results import StepLogLine, StepLogPage
from flowledger.codec import loads
from flowledger.config import Limits
from flowledger.errors import CursorError
from flowledger.runtime.documents import loop_indexes
from flowledger.runtime.engine import Engine
from flowledger.runtime.missing import missing_execution
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage.base import Row
from flowledger.timeutil import iso


class StepLogs:
    """The step-log operations of one application (see :class:`flowledger.app.App`)."""

    def __init__(self, engine: Engine, hub: ChangeHub, limits: Limits) -> None:
        self._engine = engine
        self._hub = hub
        self._limits = limits

    async def list(self, request: ListStepLogs) -> StepLogPage:
        """One page of the execution's lines after ``after`` (a line ``id``) or after the
        page whose ``nextCursor`` is ``cursor``, oldest first; ``nextCursor`` is None when
        no line is left for now. (A cursor is the last line's id as text: lines only
        grow, so it needs no signature to stay valid.)"""
        after = request.after
        if request.cursor is not None:
            if not request.cursor.isdigit():
                raise CursorError("cursor is not a nextCursor of this listing", ("cursor",))
            after = int(request.cursor)
        limit = page_size(request, self._limits.max_page)
        await self._row(request.id)
        rows = await self._engine.store.get_step_logs(
            request.id,
            after_id=after,
            step_ids=request.steps,
            step_execution_ids=request.attempts,
            limit=limit + 1,
        )
        more = len(rows) > limit
        lines = [_line(row) for row in rows[:limit]]
        return {"items": lines, "nextCursor": str(lines[-1]["id"]) if more and lines else None}

    async def counts(self, execution_id: str) -> dict[str, int]:
        """How many lines the execution has per level (``executions show``)."""
        return await self._engine.store.count_step_logs(execution_id)

    async def follow(self, request: FollowStepLogs) -> AsyncIterator[StepLogLine]:
        """The lines after ``after``, then each new one as its attempt commits, until the
        execution has ended and everything it logged was given."""
        await self._row(request.id)
        after = request.after
        with self._hub.subscribe(request.id) as sub:
            while True:
                row = await self._row(request.id)  # the status first, then lines up to it
                while True:
                    rows = await self._engine.store.get_step_logs(
                        request.id, after_id=after, step_ids=request.steps, limit=1000
                    )
                    for found in rows:
                        after = int(found["id"])
                        yield _line(found)
                    if len(rows) < 1000:
                        break
                if ExecutionStatus(row["runtime_status"]).terminal:
                    return
                await sub.wait(RECHECK)

    async def _row(self, execution_id: str) -> Row:
        row = await self._engine.store.get_execution(execution_id)
        if row is None:
            raise await missing_execution(self._engine.store, execution_id)
        return row


def _line(row: Row) -> StepLogLine:
    return {
        "id": int(row["id"]),
        "at": iso(row["at"]),
        "stepExecutionId": row["step_execution_id"],
        "stepId": row["step_id"],
        "attempt": int(row["attempt"]),
        "loop": loop_indexes(row.get("loop_key") or ""),
        "level": row["level"],
        "message": str(loads(row["message"])),
    }
