"""An asyncio psycopg connection used from the event loop, one transaction at a time.

The writes that take no store lane (storage.pgstarts, storage.pgrounds) each keep one,
opened on first use, in autocommit. Each write is one transaction, sent either as one
message of many statements, which PostgreSQL runs as one transaction and commits at its
end (the simple-query protocol; psycopg binds the values on this side), or as one
pipeline from BEGIN to COMMIT. No transaction is left open between writes, so a
connection found in any other state was left by a cancelled or failed write: it is
dropped, as is one that belongs to another event loop (an asyncio connection is bound
to the loop that opened it), and the next write opens a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg

from flowledger.storage.pgpipe import Pipe

Connect = Callable[[], Awaitable["psycopg.AsyncConnection[Any]"]]


class LoopConnection:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pipe = Pipe()  # its prepared statements belong to the connection

    async def send(self, statements: list[str], values: list[Any]) -> None:
        """Run ``statements`` (``%s`` placeholders, ``values`` in their order) as one
        transaction; raises what psycopg raises (then nothing was committed, unless the
        connection was lost after the message was sent)."""
        conn = await self._connection()
        await psycopg.AsyncClientCursor(conn).execute("; ".join(statements), values)

    async def pipeline(self, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Run each statement once per row of its parameters, in one transaction sent as
        one pipeline; raises what psycopg raises (then nothing was committed, unless the
        connection was lost after COMMIT was sent).

        The pipeline is driven on libpq itself (storage.pgpipe): psycopg's own pipeline
        flushes the socket and runs its Python bookkeeping once per row, which was a
        third of a PostgreSQL worker's CPU (docs/performance.md)."""
        conn = await self._connection()
        try:
            await self._pipe.run(conn, statements)
        except psycopg.Error:
            status = conn.info.transaction_status
            if status == psycopg.pq.TransactionStatus.INERROR:
                await conn.execute("ROLLBACK")  # a refused statement: the connection lives
            elif _left_open(conn):
                # The pipeline stopped with results unread (a lost connection, say):
                # BEGIN and the fence may have run, and the transaction would hold the
                # rounds' rows FOR UPDATE until this connection's next use, while the
                # writer lane, told to write the group instead, waited for those rows:
                # forever. Closing the connection ends the transaction at once.
                self.discard()
            raise
        except BaseException:
            if _left_open(conn):
                self.discard()  # cancelled, say: no transaction left open behind it
            raise

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is not None and (
            self._loop is not asyncio.get_running_loop()
            or conn.broken
            or conn.closed
            or _left_open(conn)
        ):
            self.discard()
            conn = None
        if conn is None:
            conn = self._conn = await self._connect()  # in autocommit (see the module)
            self._pipe = Pipe()
            self._loop = asyncio.get_running_loop()
        return conn

    def discard(self) -> None:
        """Drop the connection without waiting (it may belong to a loop that is gone)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.pgconn.finish()

    def owned_here(self) -> bool:
        """The connection (if any) belongs to the running event loop."""
        return self._loop is asyncio.get_running_loop()

    async def close(self) -> None:
        if not self.owned_here():
            self.discard()
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


def _left_open(conn: psycopg.AsyncConnection[Any]) -> bool:
    """A transaction, or a pipeline with results unread, is still open on ``conn``."""
    return (
        conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        or conn.pgconn.pipeline_status != psycopg.pq.PipelineStatus.OFF
    )
