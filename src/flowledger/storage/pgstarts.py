"""PostgreSQL's starts, written from the event loop on an asyncio connection of their own.

A start is a durable commit its caller waits for, and callers often start executions
one after another (a loop of ``Engine.start``, a client posting starts). Through a store
lane each one costs four hand-overs between threads and processes: the loop wakes the
lane's thread, the thread the backend, the backend the thread, the thread the loop. On a
loaded machine every hand-over waits for a core (bench/compare.py --pg prints bare
starts made each way). Here the loop sends the start itself and sleeps on the socket, as
it already does for LISTEN: two hand-overs, and the loop is never blocked.

Starts asked in the same event-loop tick, or while the previous group is being written,
share one transaction: their rows and events, sent as one message of many statements,
which PostgreSQL runs and commits as one.

Only the plain case is written here: rows without a trigger key, whose inserts have no
ON CONFLICT. Anything else, or a group that fails for any reason (a conflict: the same
start asked again after an ambiguous failure; a lost connection), answers False, and
each caller takes the store's general path (storage.leasesql), which tells a taken key
or id from an error and raises errors as every other write does. Nothing of a failed
group was committed, or its commit was ambiguous and the general path finds the rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table

from flowledger.storage.base import Row, claimable_when_created
from flowledger.storage.fastpath import PreparedWrite
from flowledger.storage.pgloop import Connect, LoopConnection
from flowledger.storage.schema import events, executions

Prepare = Callable[[Table, Row], PreparedWrite]
_Start = tuple[Row, Sequence[Row], "asyncio.Future[bool]"]


class StartWriter:
    def __init__(self, connect: Connect, prepare: Prepare, notify: str) -> None:
        self._conn = LoopConnection(connect)
        self._prepare = prepare
        #: The statement that wakes idle workers (``NOTIFY <channel>``).
        self._notify = notify
        self._queue: list[_Start] = []
        self._writing: asyncio.Task[None] | None = None

    async def create(self, execution: Row, events_: Sequence[Row]) -> bool:
        """Write a new execution and its first events, durably. False: not written here,
        take the general path (see the module's docstring)."""
        if execution.get("trigger_key") is not None:
            return False
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._queue.append((execution, events_, done))
        if self._writing is None:
            # A task, not a call now: the starts asked in this tick join its first group.
            self._writing = loop.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        group: list[_Start] = []
        try:
            while self._queue:
                group, self._queue = self._queue, []
                _answer(group, await self._write(group))
                group = []
        finally:
            # Left unanswered only when this task was cancelled (its loop is closing).
            self._writing = None
            _answer(group + self._queue, False)
            self._queue = []

    async def _write(self, group: list[_Start]) -> bool:
        statements: list[str] = []
        values: list[Any] = []
        try:
            for execution, events_, _ in group:
                for table, rows in ((executions, (execution,)), (events, events_)):
                    for row in rows:
                        prepared = self._prepare(table, row)
                        statements.append(prepared.sql)
                        values.extend(prepared.params(row))
            if any(claimable_when_created(execution) for execution, _, _ in group):
                # Idle workers wake when this commits (a start nobody holds is theirs to
                # claim): a statement of this message, not a transaction of its own.
                statements.append(self._notify)
            # One message of many statements (storage.pgloop): a pipeline of the same
            # statements costs twice the client's CPU.
            await self._conn.send(statements, values)
        except Exception:  # the general path raises it, as every write does
            # A refused statement left the connection idle (its transaction is gone); a
            # broken or busy one is replaced by the next send.
            return False
        return True

    async def close(self) -> None:
        if self._writing is not None and self._conn.owned_here():
            await asyncio.gather(self._writing, return_exceptions=True)
        await self._conn.close()


def _answer(group: list[_Start], written: bool) -> None:
    for _, _, done in group:
        if not done.done():  # its caller was cancelled meanwhile
            done.set_result(written)
