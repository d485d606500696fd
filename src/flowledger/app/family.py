"""An execution and its descendants, as a stream that follows them finds them.

A descendant is found two ways: in the whole family's progress (``progress``: one read
down the parent links, when the stream opens and whenever it has heard nothing for a
while, to catch what a lost hint hid), and heard of (a change of an execution not yet
known: its parent chain is walked up until it reaches a member or leaves the family).
An execution's parent never changes, so what is not in the family stays out of it, and
is remembered as such (boundedly).
"""

from __future__ import annotations

from flowledger.storage.base import Row, Store

#: Executions remembered as outside the family (a busy database's other work).
MAX_OUTSIDERS = 10_000


class Family:
    """The members of one execution's family: itself first, then descendants in the
    order they were found (a parent before its children)."""

    def __init__(self, store: Store, head: Row) -> None:
        self._store = store
        self.head = str(head["id"])
        #: Every descendant shares the head's root (the head's own id when it is one).
        self._root = str(head["root_id"] or head["id"])
        self.members: dict[str, None] = {self.head: None}
        self._outsiders: dict[str, None] = {}

    async def joins(self, execution_id: str) -> bool:
        """Whether ``execution_id`` is in the family (it joins when it is new to it)."""
        if execution_id in self.members:
            return True
        if execution_id in self._outsiders:
            return False
        chain: list[str] = []
        current: str | None = execution_id
        inside = False
        while current is not None and current not in self._outsiders:
            if current in self.members:
                inside = True
                break
            row = await self._store.get_execution(current)
            if row is None or str(row["root_id"] or row["id"]) != self._root:
                break
            chain.append(current)
            current = row["parent_id"]
        for member in reversed(chain):  # parents before their children
            if inside:
                self.members[member] = None
            else:
                self._outsiders[member] = None
        while len(self._outsiders) > MAX_OUTSIDERS:
            del self._outsiders[next(iter(self._outsiders))]
        return inside

    async def progress(self) -> dict[str, Row]:
        """Every member as the store has it now (``id``, ``parent_id``, ``runtime_status``,
        ``event_seq``), in one read however large the family; descendants not known yet
        join, each after its parent. A member missing from it is gone (pruned)."""
        rows = {str(row["id"]): row for row in await self._store.family_progress(self.head)}
        new = [row for member, row in rows.items() if member not in self.members]
        while new:  # parents first: a child joins once its parent has
            waiting = []
            for row in new:
                if row["parent_id"] in self.members:
                    self.members[str(row["id"])] = None
                else:
                    waiting.append(row)
            if len(waiting) == len(new):  # (cannot happen: every row descends from the head)
                break
            new = waiting
        return rows
