"""The executions below an execution: a root's budget of them, and a family's progress.

The budget: the depth cap stops a workflow that starts itself once per level, not one
that starts itself k times: k to the power of the depth. Each ``sys.sub_workflow`` step
reserves its children on the root's row before it plans them, in one conditional
UPDATE, so steps in many processes at once cannot go past the budget together. A
reservation whose step then dies is not given back: the budget errs on the side of
stopping.

The progress: where each member of a family (an execution and everything below it) has
got to, in one read down the parent links, for a family's event stream (app.family).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from sqlalchemy import select, update

from flowledger.storage.schema import executions
from flowledger.storage.sqlpart import SQLPart, reads, small_write
from flowledger.types import Row


class DescendantStore(ABC):
    @abstractmethod
    async def reserve_descendants(self, root_id: str, count: int, most: int) -> int | None:
        """Count ``count`` more executions below ``root_id`` unless that makes more than
        ``most``: the new total, or None when refused (nothing counted then). A root that
        is gone (pruned beside a child that outlived it) counts nothing and refuses
        nothing."""

    @abstractmethod
    async def family_progress(self, head_id: str) -> list[Row]:
        """``head_id`` and every execution below it, at any depth, each as its ``id``,
        ``parent_id``, ``runtime_status`` and ``event_seq``; none when the head is gone."""


class SQLDescendantStore(SQLPart, DescendantStore):
    @small_write
    def reserve_descendants(self, root_id: str, count: int, most: int) -> int | None:
        t = executions
        with self.conn.begin():
            total = self.conn.execute(
                update(t)
                .where(t.c.id == root_id, t.c.descendants + count <= most)
                .values(descendants=t.c.descendants + count)
                .returning(t.c.descendants)
            ).scalar()
            if total is None:
                exists = self.conn.execute(select(t.c.id).where(t.c.id == root_id)).first()
                return None if exists else count
        return int(total)

    @reads
    def family_progress(self, head_id: str) -> list[Row]:
        t = executions
        # Down the parent links (ix_executions_parent serves each level), not by root_id:
        # the head need not be a root, and root_id has no index of its own.
        family = select(t.c.id).where(t.c.id == head_id).cte("family", recursive=True)
        family = family.union_all(select(t.c.id).where(t.c.parent_id == family.c.id))
        stmt = select(t.c.id, t.c.parent_id, t.c.runtime_status, t.c.event_seq).join(
            family, t.c.id == family.c.id
        )
        with self.reading():
            return [dict(r._mapping) for r in self.conn.execute(stmt)]
