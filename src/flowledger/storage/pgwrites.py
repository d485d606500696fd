"""PostgreSQL's round writer: the fencing lock of a group in fixed SQL on the driver's cursor.

``BatchWriter`` locks a group's executions with a SQLAlchemy ``SELECT … IN … FOR UPDATE``
built per group (an expanding IN: a cache key and a compile each time). Here the text is
fixed (``= ANY`` of one array parameter), so a group's whole transaction stays on the
driver connection and the group commits through it (GroupCommitter ``driver_groups``).
"""

from __future__ import annotations

from sqlalchemy import Connection

from flowledger.storage.writes import BatchWriter

# In id order, so two transactions that lock overlapping sets never wait on each other
# in a cycle.
LOCK_EPOCHS = "SELECT id, lease_epoch FROM executions WHERE id = ANY(%s) ORDER BY id FOR UPDATE"


class PostgresBatchWriter(BatchWriter):
    def _lock_epochs(self, conn: Connection, ids: list[str]) -> dict[str, int]:
        cursor = self._cursor(conn)
        cursor.execute(LOCK_EPOCHS, (ids,))
        return {row[0]: int(row[1]) for row in cursor.fetchall()}
