"""One transaction's statements as one libpq pipeline: sent with one flush, read once.

psycopg's pipeline (``conn.pipeline()`` + ``executemany``) flushes the socket after every
row and runs its Python bookkeeping per row (the query's conversion, the prepared-statement
cache, the result queue): in a PostgreSQL worker's profile that was about a third of its
CPU, six rows a step. Here the rows go through libpq itself (psycopg's ``pgconn``, its
public low-level interface): values are dumped by psycopg's own adapters (in C) as text,
each statement is prepared once per connection with the types PostgreSQL infers from the
SQL, every row is queued in libpq's buffer, and the whole transaction leaves in one flush;
the results are read as they arrive, and the first error is raised as psycopg raises it.

The statements are the storage layer's own fixed SQL with ``%s`` placeholders.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

_ExecStatus = pq.ExecStatus
_names = itertools.count()


class Pipe:
    """The statements prepared on one connection (a new connection gets a new Pipe)."""

    def __init__(self) -> None:
        self._prepared: dict[str, bytes] = {}

    async def run(
        self,
        conn: psycopg.AsyncConnection[Any],
        statements: Sequence[tuple[str, Sequence[Sequence[Any]]]],
    ) -> None:
        """BEGIN, each statement once per row of its parameters, COMMIT: one transaction.
        Raises psycopg's error for the first statement PostgreSQL refused (the
        transaction is then left failed, for the caller to roll back), or for a value
        psycopg cannot send (then nothing was sent)."""
        encoding = conn.info.encoding
        tx = Transformer.from_context(conn)
        # Every value is dumped before anything is sent: a value that cannot be sent
        # leaves the connection as it was.
        queued: list[tuple[bytes, Sequence[Any]]] = []
        new: dict[str, bytes] = {}  # prepared in this pipeline (kept once PostgreSQL did)
        for sql, rows in statements:
            name = self._prepared.get(sql) or new.get(sql)
            if name is None:
                name = new[sql] = f"flowledger_{next(_names)}".encode()
            if not rows:
                continue
            formats = [PyFormat.TEXT] * len(rows[0])  # a statement's rows share one shape
            for row in rows:
                queued.append((name, tx.dump_sequence(row, formats)))
        pg = conn.pgconn
        pg.enter_pipeline_mode()
        for sql, name in new.items():
            pg.send_prepare(name, _numbered(sql).encode(encoding))
        if new:  # a segment of its own: a refused write cannot undo a prepare
            pg.pipeline_sync()
        pg.send_query_params(b"BEGIN", None)
        for name, values in queued:
            pg.send_query_prepared(name, values)
        pg.send_query_params(b"COMMIT", None)
        pg.pipeline_sync()
        while pg.flush():  # 1: the socket took part of it
            await _ready(pg.socket, write=True)
        prepared, refused = await _results(pg, 2 if new else 1)
        pg.exit_pipeline_mode()
        for sql in list(new)[:prepared]:
            self._prepared[sql] = new[sql]
        if refused is not None:
            raise psycopg.errors.error_from_result(refused, encoding=encoding)


async def _results(pg: pq.abc.PGconn, syncs: int) -> tuple[int, pq.abc.PGresult | None]:
    """Read until ``syncs`` pipeline syncs came back: how many results the first segment
    began with that succeeded (the prepares, when there were any), and the first error."""
    succeeded, in_first, refused = 0, syncs == 2, None
    while syncs:
        if pg.is_busy():
            await _ready(pg.socket)
            pg.consume_input()
            continue
        result = pg.get_result()
        if result is None:  # the end of one statement's results
            continue
        status = result.status
        if status == _ExecStatus.PIPELINE_SYNC:
            syncs -= 1
            in_first = False
        elif status == _ExecStatus.FATAL_ERROR:
            refused = refused or result
        elif in_first and status == _ExecStatus.COMMAND_OK and refused is None:
            succeeded += 1
    return succeeded, refused


async def _ready(fd: int, *, write: bool = False) -> None:
    """Until the socket can be written (``write``) or read, on the running loop."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


def _numbered(sql: str) -> str:
    """``%s`` placeholders as ``$1``, ``$2``, ... (the storage layer's SQL has no other %)."""
    parts = sql.split("%s")
    if any("%" in part for part in parts):
        raise ValueError(f"a literal % in pipelined SQL: {sql!r}")
    numbered = [parts[0]]
    for n, part in enumerate(parts[1:], 1):
        numbered.append(f"${n}{part}")
    return "".join(numbered)
