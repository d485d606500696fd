"""Storage of pushed workflows' switches: disable, enable, un-push (``workflows`` rows)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from flowledger.storage.schedules import ScheduleState
from flowledger.storage.schema import UNFINISHED, executions, workflow_versions, workflows
from flowledger.storage.schema_schedules import schedule_states
from flowledger.storage.sqlpart import SQLPart, older_than, reads, writes
from flowledger.types import Row


@dataclass(frozen=True)
class Pushed:
    """A pushed workflow: its live version's row, and its switches."""

    version: Row
    pushed_at: datetime
    #: None while its triggers are enabled.
    disabled_at: datetime | None


class PushStore(ABC):
    @abstractmethod
    async def pushed_workflows(self, name: str | None = None) -> list[Pushed]:
        """Every pushed workflow (disabled ones too), by name; only ``name`` when given."""

    @abstractmethod
    async def pushed_workflows_page(
        self, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[tuple[Pushed, datetime]]:
        """One page of :meth:`pushed_workflows`, newest first by first push (a workflow
        pushed again keeps its place), each with its first push; ``before`` a page's
        last (first push, name)."""

    @abstractmethod
    async def set_workflow_disabled(
        self, name: str, disabled: bool, restart: Sequence[ScheduleState] | None = None
    ) -> bool | None:
        """Disable or enable the triggers of a pushed workflow; None: not pushed, False:
        already so. ``restart`` replaces its schedule progress in the same transaction
        (an enable that must not catch up on the ticks missed while disabled)."""

    @abstractmethod
    async def unpush_workflow(self, name: str) -> bool:
        """Forget that ``name`` is pushed, and its schedule progress (its versions and
        executions stay); False when it was not pushed."""

    @abstractmethod
    async def count_unfinished(self, workflow_name: str) -> int:
        """Executions of the workflow not yet finished (queued, running, waiting)."""


class SQLPushStore(SQLPart, PushStore):
    @reads
    def pushed_workflows(self, name: str | None = None) -> list[Pushed]:
        v, w = workflow_versions, workflows
        query = select(*_LISTED, w.c.pushed_at, w.c.disabled_at).join(w, w.c.version_id == v.c.id)
        if name is not None:
            query = query.where(w.c.name == name)
        with self.reading():
            rows = self.conn.execute(query.order_by(v.c.name)).all()
        return [_pushed(r) for r in rows]

    @reads
    def pushed_workflows_page(
        self, limit: int, before: tuple[datetime, str] | None = None
    ) -> list[tuple[Pushed, datetime]]:
        v, w = workflow_versions, workflows
        query = (
            select(*_LISTED, w.c.pushed_at, w.c.disabled_at, w.c.first_pushed_at)
            .join(w, w.c.version_id == v.c.id)
            .order_by(w.c.first_pushed_at.desc(), w.c.name.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(older_than(w.c.first_pushed_at, w.c.name, before))
        with self.reading():
            rows = self.conn.execute(query).all()
        return [(_pushed(r), _aware(r.first_pushed_at)) for r in rows]

    @writes
    def set_workflow_disabled(
        self, name: str, disabled: bool, restart: Sequence[ScheduleState] | None = None
    ) -> bool | None:
        w, s = workflows, schedule_states
        with self.conn.begin():
            row = self.conn.execute(
                select(w.c.disabled_at).where(w.c.name == name).with_for_update()
            ).first()
            if row is None:
                return None
            if (row.disabled_at is not None) == disabled:
                return False
            self.conn.execute(
                update(w)
                .where(w.c.name == name)
                .values(disabled_at=self._sql_now() if disabled else None)
            )
            if restart is not None:
                self.conn.execute(delete(s).where(s.c.workflow_name == name))
                now = self._sql_now()
                for state in restart:
                    self.conn.execute(
                        insert(s).values(
                            workflow_name=name,
                            trigger_id=state.trigger_id,
                            cron=state.cron,
                            timezone=state.timezone,
                            last_tick=state.last_tick,
                            updated_at=now,
                        )
                    )
            return True

    @writes
    def unpush_workflow(self, name: str) -> bool:
        w, s = workflows, schedule_states
        with self.conn.begin():
            gone = self.conn.execute(delete(w).where(w.c.name == name)).rowcount
            self.conn.execute(delete(s).where(s.c.workflow_name == name))
        return bool(gone)

    @reads
    def count_unfinished(self, workflow_name: str) -> int:
        t = executions
        query = (
            select(func.count())
            .select_from(t)
            .where(t.c.workflow_name == workflow_name, t.c.runtime_status.in_(UNFINISHED))
        )
        with self.reading():
            return int(self.conn.execute(query).scalar_one())


#: The version columns a listing reads: not ``source``, which no listing shows and which
#: doubles what a definition weighs.
_LISTED = tuple(c for c in workflow_versions.c if c.name != "source")


def _pushed(r: Any) -> Pushed:
    return Pushed(
        {c.name: r._mapping[c.name] for c in _LISTED},
        r.pushed_at,
        r.disabled_at,
    )


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
