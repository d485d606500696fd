"""Whether a store can serve: ``/readyz`` and a worker's watch on the schema ask it.

Two conditions a plain query does not show:

- **The schema moved under a running process.** A newer flowledger migrated the database
  while this one ran (a rolling upgrade that forgot a worker): this build's SQL no longer
  matches the tables, and it must stop taking work rather than write rows in an old shape.
  A start already refuses such a database (storage.migrations); a running process learns
  it from ``schema_problem``.
- **Writes fail while reads work** (a full disk, a file made read-only). A read-only probe
  answers "ready" through it. Every call the database's condition made fail is noted
  (``SQLPart._trouble``); while one is recent, readiness writes a probe row of its own
  (a few pages, inserted and deleted in one transaction): ready again once that commits.
  A probe only then, so a healthy store's readiness costs one short read.
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod

from sqlalchemy import delete, insert

from flowledger.errors import StorageError
from flowledger.storage import migrations
from flowledger.storage.schema import meta
from flowledger.storage.sqlpart import SQLPart, driver_message, reads, writes

#: Seconds a failure of the database's condition keeps readiness probing with a write.
RECENT_TROUBLE = 60.0
#: The probe's row: its key, and a value of a few pages, so the probe needs new pages as
#: the failed writes did (an update in place would fit where an insert does not); random,
#: so PostgreSQL cannot compress it to nothing.
PROBE_KEY = "readiness_probe"
PROBE_BYTES = 8_192


class ReadinessStore(ABC):
    @abstractmethod
    async def schema_problem(self) -> str | None:
        """Why this flowledger cannot use the database's schema as it is now (another
        version's revision), in a sentence; None when it is the one this build uses.
        Raises StorageError when the database does not answer."""

    @abstractmethod
    async def check_ready(self) -> None:
        """Raise StorageError, saying why, unless the store can serve: the database
        answers, its schema is this build's, and writes work (probed when one failed
        lately for the database's condition)."""


class SQLReadinessStore(SQLPart, ReadinessStore):
    @reads
    def schema_problem(self) -> str | None:
        with self.reading():
            found = migrations.current_revision(self.conn)
        return migrations.revision_problem(found)

    async def check_ready(self) -> None:
        problem = await self.schema_problem()
        if problem is not None:
            raise StorageError(problem)
        trouble = self._last_trouble
        if trouble is not None and time.monotonic() - trouble[0] < RECENT_TROUBLE:
            await self._probe_write()
            self._last_trouble = None  # the probe committed: writes work again

    @writes
    def _probe_write(self) -> None:
        try:
            with self.conn.begin():
                self.conn.execute(
                    insert(meta).values(key=PROBE_KEY, value=secrets.token_hex(PROBE_BYTES // 2))
                )
                self.conn.execute(delete(meta).where(meta.c.key == PROBE_KEY))
        except Exception as exc:
            if not self._trouble(exc):
                raise
            detail = driver_message(exc)
            raise StorageError(f"the database answers but cannot take writes: {detail}") from exc
