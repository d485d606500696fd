"""An execution and its descendants, as a stream that follows them finds them.

A descendant is found two ways: listed below a known member (the ones that exist when
the stream opens, and again on a quiet re-check), and heard of (a change of an
execution not yet known): its parent chain is walked up until it reaches a member or
leaves the family. An execution's parent never changes, so what is not in the family
stays out of it, and is remembered as such (boundedly).
"""

from __future__ import annotations

from flowledger.storage.base import ExecutionQuery, Row, Store

#: Children listed per read while finding descendants.
PAGE = 1000
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

    async def find_below(self, parents: list[str]) -> list[str]:
        """List the descendants of ``parents`` not known yet (all depths); they join."""
        found: list[str] = []
        queue = list(parents)
        while queue:
            parent = queue.pop(0)
            before = None
            while True:
                query = ExecutionQuery(parent_id=parent, limit=PAGE, before=before)
                rows = await self._store.list_executions(query)
                for row in reversed(rows):  # oldest first
                    child = str(row["id"])
                    queue.append(child)
                    if child not in self.members:
                        self.members[child] = None
                        found.append(child)
                if len(rows) < PAGE:
                    break
                before = (rows[-1]["created_at"], str(rows[-1]["id"]))
        return found

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
