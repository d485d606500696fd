"""Storage of the service gauges (``/metrics``): how much work waits, in one cheap read.

- ``ready``: executions a worker could claim now (not leased, or their lease lapsed;
  NotStarted/InProgress without a future wake-up, or awaiting input with a due timer);
- ``parked``: NotStarted/InProgress executions, not leased, waiting for a future
  ``wake_at`` (a timer, a retry's back-off);
- ``awaiting_input``: executions in ``AwaitingUserInput``;
- ``deliveries_pending``: outbound webhook deliveries not yet delivered nor given up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from sqlalchemy import and_, case, func, or_, select

from flowledger.storage.schema import UNFINISHED, executions
from flowledger.storage.schema_webhooks import deliveries
from flowledger.storage.sqlpart import SQLPart, reads

GAUGES = ("ready", "parked", "awaiting_input", "deliveries_pending")


class GaugeStore(ABC):
    @abstractmethod
    async def work_gauges(self) -> dict[str, int]:
        """The counts of :data:`GAUGES`."""


class SQLGaugeStore(SQLPart, GaugeStore):
    @reads
    def work_gauges(self) -> dict[str, int]:
        t = executions
        now = self._sql_now()
        free = or_(t.c.lease_owner.is_(None), t.c.lease_expires_at < now)
        moving = t.c.runtime_status.in_(("NotStarted", "InProgress"))
        awaiting = t.c.runtime_status == "AwaitingUserInput"
        ready = and_(
            free,
            or_(
                and_(moving, or_(t.c.wake_at.is_(None), t.c.wake_at <= now)),
                and_(awaiting, t.c.wake_at <= now),
            ),
        )
        parked = and_(free, moving, t.c.wake_at > now)

        def count(condition: object) -> object:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)  # type: ignore[arg-type]

        stmt = select(count(ready), count(parked), count(awaiting)).where(  # type: ignore[call-overload]
            t.c.runtime_status.in_(UNFINISHED)
        )
        backlog = (
            select(func.count()).select_from(deliveries).where(deliveries.c.status == "pending")
        )
        with self.reading():
            row = self.conn.execute(stmt).one()
            pending = self.conn.execute(backlog).scalar_one()
        return dict(zip(GAUGES, [int(row[0]), int(row[1]), int(row[2]), int(pending)], strict=True))
