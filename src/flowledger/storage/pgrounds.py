"""PostgreSQL's rounds, written from the event loop on an asyncio connection of their own.

A worker's executions wait for their rounds' durable commits. Through the writer lane
each group costs four hand-overs between threads and processes (the loop wakes the
lane's thread, the thread the backend, the backend the thread, the thread the loop); on
a loaded machine each waits for a core. Here the loop sends the group itself, as one
pipeline from BEGIN to COMMIT (storage.pgloop), and sleeps on the socket until PostgreSQL
has committed it: the same statements as PostgresBatchWriter's one pipeline (the fence,
then the rows, then the outbox), in the same single transaction.

Only groups that reach no other execution are written here (a chain's rounds, a
worker's rounds; not children or signals). Anything else, and a group that fails for
any reason (a lost lease trips the fence; a conflict; a lost connection), answers
False: nothing of it was committed (or the commit was ambiguous, as on any path), and
the group takes the writer lane, whose BatchWriter tells the refused rounds from the
others and raises errors as every write does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowledger.storage.base import Batch
from flowledger.storage.pgloop import Connect, LoopConnection
from flowledger.storage.pgwrites import PostgresBatchWriter


class RoundWriter:
    def __init__(self, connect: Connect, writer: PostgresBatchWriter) -> None:
        self._conn = LoopConnection(connect)
        self._writer = writer

    async def write(self, batches: Sequence[Batch]) -> bool:
        """Write and commit the group; False: not written here (see the module)."""
        if any(b.links() for b in batches):
            return False
        recorder = _Recorder()
        try:
            self._writer.write_fenced(recorder, batches)
            await self._conn.pipeline(recorder.statements)
        except Exception:  # the lane's path tells what failed and raises it
            return False
        return True

    async def close(self) -> None:
        await self._conn.close()


class _Recorder:
    """A stand-in for a driver cursor that keeps what it is asked to run, in order."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Sequence[Sequence[Any]]]] = []

    def execute(self, sql: str, params: Sequence[Any]) -> None:
        self.statements.append((sql, (params,)))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.statements.append((sql, rows))
