"""Storage of the schedules part of the model: abstract verbs, and their SQL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from flowledger.storage.schema import UNFINISHED_SCHEDULE_SQL, executions
from flowledger.storage.schema_schedules import schedule_states
from flowledger.storage.sqlpart import SQLPart, reads, writes


@dataclass(frozen=True)
class ScheduleState:
    """How far one schedule trigger of a pushed workflow has fired."""

    workflow_name: str
    #: The trigger's ``schedule_id`` (definition.triggers): its content, not its place.
    trigger_id: str
    #: The cron expression and time zone that ``last_tick`` was computed for.
    cron: str
    timezone: str
    #: The newest tick dealt with: started, or skipped by the catch-up policy (aware UTC).
    last_tick: datetime
    #: Ticks ``overlap: skip`` left unstarted, and the newest of them.
    skipped_ticks: int = 0
    last_skipped_tick: datetime | None = None


class ScheduleStore(ABC):
    """What the runtime and the faces need from a database for schedules."""

    @abstractmethod
    async def schedule_states(self) -> list[ScheduleState]:
        """Every schedule trigger's progress (triggers that never fired have none)."""

    @abstractmethod
    async def save_schedule_state(
        self, state: ScheduleState, expected: ScheduleState | None
    ) -> bool:
        """Compare-and-set: store ``state`` only if the stored one still equals ``expected``
        (None: there is none yet). False when another worker moved it first."""

    @abstractmethod
    async def forget_schedule_states(self, workflow_name: str, keep: Collection[str]) -> int:
        """Delete the progress of ``workflow_name``'s schedules whose ``trigger_id`` is not
        in ``keep`` (its live version's): a schedule a push removed must not go on from
        there when a later push brings it back. How many were deleted."""

    @abstractmethod
    async def unfinished_ticks(self, workflow_name: str, key_prefix: str) -> list[tuple[str, str]]:
        """(execution id, trigger key) of the unfinished executions of ``workflow_name``
        whose trigger key starts with ``key_prefix`` (one schedule trigger's ticks)."""


class SQLScheduleStore(SQLPart, ScheduleStore):
    """Shared SQL for SQLite and PostgreSQL; SQLStore provides the connection and clock."""

    @reads
    def schedule_states(self) -> list[ScheduleState]:
        t = schedule_states
        query = select(
            t.c.workflow_name,
            t.c.trigger_id,
            t.c.cron,
            t.c.timezone,
            t.c.last_tick,
            t.c.skipped_ticks,
            t.c.last_skipped_tick,
        )
        with self.reading():
            return [ScheduleState(*row) for row in self.conn.execute(query)]

    @writes
    def save_schedule_state(self, state: ScheduleState, expected: ScheduleState | None) -> bool:
        t = schedule_states
        values = {
            "cron": state.cron,
            "timezone": state.timezone,
            "last_tick": state.last_tick,
            "updated_at": self._sql_now(),
            "skipped_ticks": state.skipped_ticks,
            "last_skipped_tick": state.last_skipped_tick,
        }
        if expected is None:
            try:
                with self.conn.begin():
                    self.conn.execute(
                        insert(t).values(
                            workflow_name=state.workflow_name,
                            trigger_id=state.trigger_id,
                            **values,
                        )
                    )
            except IntegrityError:  # another worker recorded the first tick before us
                return False
            return True
        where = and_(
            t.c.workflow_name == expected.workflow_name,
            t.c.trigger_id == expected.trigger_id,
            t.c.cron == expected.cron,
            t.c.timezone == expected.timezone,
            t.c.last_tick == expected.last_tick,
        )
        with self.conn.begin():
            return self.conn.execute(update(t).where(where).values(**values)).rowcount == 1

    @writes
    def forget_schedule_states(self, workflow_name: str, keep: Collection[str]) -> int:
        t = schedule_states
        query = delete(t).where(t.c.workflow_name == workflow_name)
        if keep:
            query = query.where(t.c.trigger_id.not_in(list(keep)))
        with self.conn.begin():
            return int(self.conn.execute(query).rowcount)

    @reads
    def unfinished_ticks(self, workflow_name: str, key_prefix: str) -> list[tuple[str, str]]:
        with self.reading():
            t = executions
            # The partial index's own condition, word for word (SQLite matches it as text),
            # then the exact prefix: LIKE would read '_' as a wildcard (and ignore case).
            query = select(t.c.id, t.c.trigger_key).where(
                t.c.workflow_name == workflow_name,
                text(UNFINISHED_SCHEDULE_SQL),
                func.substr(t.c.trigger_key, 1, len(key_prefix)) == key_prefix,
            )
            return [(r.id, r.trigger_key) for r in self.conn.execute(query)]
