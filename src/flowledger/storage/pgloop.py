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

Connect = Callable[[], Awaitable["psycopg.AsyncConnection[Any]"]]


class LoopConnection:
    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def send(self, statements: list[str], values: list[Any]) -> None:
        """Run ``statements`` (``%s`` placeholders, ``values`` in their order) as one
        transaction; raises what psycopg raises (then nothing was committed, unless the
        connection was lost after the message was sent)."""
        conn = await self._connection()
        await psycopg.AsyncClientCursor(conn).execute("; ".join(statements), values)

    async def pipeline(self, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Run each statement once per row of its parameters, in one transaction sent as
        one pipeline (many rows of one statement: one executemany, bound in C, where
        ``send`` would quote every value in Python); raises what psycopg raises (then
        nothing was committed, unless the connection was lost after COMMIT was sent)."""
        conn = await self._connection()
        cursor = conn.cursor()
        try:
            async with conn.pipeline():
                await cursor.execute("BEGIN")
                for sql, rows in statements:
                    if len(rows) == 1:
                        await cursor.execute(sql, rows[0])
                    else:
                        await cursor.executemany(sql, rows)
                await cursor.execute("COMMIT")
        except psycopg.Error:
            status = conn.info.transaction_status
            if status == psycopg.pq.TransactionStatus.INERROR:
                await conn.execute("ROLLBACK")  # a refused statement: the connection lives
            elif status != psycopg.pq.TransactionStatus.IDLE:
                # Refused here, not by the server (a value psycopg cannot send): BEGIN and
                # the fence ran, and the transaction held the rounds' rows FOR UPDATE
                # until this connection's next use, while the writer lane, told to write
                # the group instead, waited for those rows: forever. Closing the
                # connection ends the transaction at once.
                self.discard()
            raise
        except BaseException:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                self.discard()  # cancelled, say: no transaction left open behind it
            raise

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is not None and (
            self._loop is not asyncio.get_running_loop()
            or conn.broken
            or conn.closed
            or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        ):
            self.discard()
            conn = None
        if conn is None:
            conn = self._conn = await self._connect()  # in autocommit (see the module)
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
