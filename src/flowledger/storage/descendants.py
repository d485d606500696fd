"""A root execution's budget of sub-workflow executions, at every level below it.

The depth cap stops a workflow that starts itself once per level, not one that starts
itself k times: k to the power of the depth. Each ``sys.sub_workflow`` step reserves its
children on the root's row before it plans them, in one conditional UPDATE, so steps in
many processes at once cannot go past the budget together. A reservation whose step then
dies is not given back: the budget errs on the side of stopping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from sqlalchemy import select, update

from flowledger.storage.schema import executions
from flowledger.storage.sqlpart import SQLPart, small_write


class DescendantStore(ABC):
    @abstractmethod
    async def reserve_descendants(self, root_id: str, count: int, most: int) -> int | None:
        """Count ``count`` more executions below ``root_id`` unless that makes more than
        ``most``: the new total, or None when refused (nothing counted then). A root that
        is gone (pruned beside a child that outlived it) counts nothing and refuses
        nothing."""


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
