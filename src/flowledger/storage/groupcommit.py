"""Group commit: the rounds of many executions that reach ``commit`` together share one transaction.

A worker runs many executions on one connection. Committing each round on its
own pays a disk flush and several round trips per round; queueing the rounds
that arrive within one event-loop tick and writing them together pays once for
all of them. Rounds still stand alone: one whose lease was lost is refused while
the others commit, and if the group hits a constraint (a step recorded twice),
every round is retried in a transaction of its own so the refusal lands on the
round that caused it.

The transaction runs on the store's writer thread (storage.lanes), off the event
loop. While one group is being written, the rounds that reach ``commit`` meanwhile
queue up and form the next group, written as soon as the first is done: the
slower the disk, the larger the groups. On SQLite a small group commits on the loop
instead when nothing in it can wait (the lone round's rule, SQLiteStore._commit_inline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from flowledger.errors import StorageError
from flowledger.storage.base import Batch
from flowledger.storage.lanes import NOT_HERE, Lane
from flowledger.storage.sqlpart import trouble_detail

ApplyMany = Callable[[Connection, Sequence[Batch]], list[BaseException | None]]
#: Commits rounds at once where it is called (one outcome each), or returns NOT_HERE.
Inline = Callable[[Sequence[Batch]], object]
#: Writes and commits a group from the event loop; False: not here, take the writer lane.
OnLoop = Callable[[Sequence[Batch]], Awaitable[bool]]
_Work = list[tuple[Batch, "asyncio.Future[None]"]]


class GroupCommitter:
    def __init__(
        self,
        writer: Lane,
        connection: Callable[[], Connection],
        apply: ApplyMany,
        driver_integrity_error: type[Exception],
        trouble: Callable[[BaseException], bool],
        driver_begin: Callable[[Any], None] | None = None,
        inline: Inline | None = None,
        *,
        driver_groups: bool = False,
        driver_commit: Callable[[Any], None] | None = None,
        on_loop: OnLoop | None = None,
    ) -> None:
        self._writer = writer
        #: PostgreSQL: groups go from the event loop first (storage.pgrounds).
        self._on_loop = on_loop
        #: The group being written from the loop (awaited by ``settled``).
        self._writing: asyncio.Future[list[BaseException | None]] | None = None
        self._inline = inline
        #: Begins a transaction on the driver connection, for the lone-round fast path.
        self._driver_begin = driver_begin
        #: Groups of rounds too (not only lone rounds) commit on the driver connection:
        #: ``apply`` runs nothing through SQLAlchemy for rounds without links.
        self._driver_groups = driver_groups
        #: Commits the driver connection's transaction (default: the driver's ``commit``).
        self._driver_commit = driver_commit or _commit
        self._connection = connection
        self._apply = apply
        # Writes go through the driver's cursor, so its own (PEP 249) error class shows up too.
        self._integrity_errors = (IntegrityError, driver_integrity_error)
        #: Whether a failure is the database's condition (the store's rule, DatabaseTrouble).
        self._trouble = trouble
        self._queue: _Work = []
        #: A flush is scheduled for this tick, or one is being written right now.
        self._busy = False

    async def commit(self, batch: Batch) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append((batch, future))
        if not self._busy:
            self._busy = True
            # call_soon: every round that is ready in this tick joins the same transaction.
            loop.call_soon(self._flush)
        await future

    def committed_inline(self, batch: Batch) -> bool:
        """Commit one batch right here, outside any group, when the store may (its
        ``inline``); False when it must go to the writer thread (``commit_now``). A
        plain call, not a coroutine: a chain's every round comes here."""
        outcomes = NOT_HERE if self._inline is None else self._inline([batch])
        if outcomes is NOT_HERE:
            return False
        assert isinstance(outcomes, list)
        if outcomes[0] is not None:
            raise outcomes[0]
        return True

    async def commit_now(self, batch: Batch) -> None:
        """Commit one batch at once on the writer thread, outside any group (a lone
        execution gains nothing from one). Where groups go from the event loop, it
        goes as a group: one writer of rounds, so one transaction at a time."""
        if self._on_loop is not None:
            await self.commit(batch)
            return
        outcome = await self._writer.run(lambda: self._transaction([batch])[0])
        if outcome is not None:
            raise outcome

    def _flush(self) -> None:
        work, self._queue = self._queue, []
        batches = [batch for batch, _ in work]
        if self._inline is not None and self._committed_here(work, batches):
            return
        if self._on_loop is None:
            written = self._writer.run(lambda: self._write_group(batches))
        else:
            written = self._writing = asyncio.ensure_future(self._write_from_loop(batches))
        written.add_done_callback(lambda done: self._settle(work, done))

    def _committed_here(self, work: _Work, batches: list[Batch]) -> bool:
        """A small group committed right here on the loop, under the lone round's rule
        (SQLiteStore._commit_inline), its waiters answered; False: the writer's to do.

        Measured (bench/engine_bench.py --gathered, SQLite): a worker that takes each
        execution as it is started groups ~4 rounds a transaction, and the two thread hops
        of each group were a quarter of its time: 405 -> 292 us a step. Groups of many
        rounds (a worker with a queue) exceed the rule's size and go to the writer as before.
        """
        assert self._inline is not None
        try:
            outcomes = self._inline(batches)
        except Exception:  # raised before anything was written (its BEGIN): the writer's
            return False
        if not isinstance(outcomes, list):  # NOT_HERE
            return False
        # A constraint refused in a group of several: the writer tells the round that
        # caused it from the others (this transaction was rolled back).
        if len(batches) > 1 and any(isinstance(o, _Constraint) for o in outcomes):
            return False
        done: asyncio.Future[list[BaseException | None]]
        done = asyncio.get_running_loop().create_future()
        done.set_result(outcomes)
        self._settle(work, done)
        return True

    async def _write_from_loop(self, batches: list[Batch]) -> list[BaseException | None]:
        assert self._on_loop is not None
        if await self._on_loop(batches):
            return [None] * len(batches)
        return await self._writer.run(lambda: self._write_group(batches))

    async def settled(self) -> None:
        """Wait for the group being written from the event loop, if any (before closing)."""
        writing = self._writing
        if (
            writing is not None
            and not writing.done()
            and writing.get_loop() is asyncio.get_running_loop()
        ):
            await asyncio.gather(writing, return_exceptions=True)

    def _write_group(self, batches: list[Batch]) -> list[BaseException | None]:
        """On the writer thread: the group in one transaction, or each alone on a constraint."""
        outcomes = self._transaction(batches)
        if len(batches) > 1 and any(isinstance(o, _Constraint) for o in outcomes):
            outcomes = [self._transaction([batch])[0] for batch in batches]
        return outcomes

    def _settle(self, work: _Work, done: asyncio.Future[list[BaseException | None]]) -> None:
        if done is self._writing:
            self._writing = None
        # Cancelled only when its loop is closing: whether it committed is unknown.
        exc = StorageError("a group commit was cancelled") if done.cancelled() else done.exception()
        outcomes = done.result() if exc is None else [exc] * len(work)
        for (_, future), outcome in zip(work, outcomes, strict=True):
            if future.done():  # its waiter was cancelled meanwhile
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)
        if self._queue:  # rounds that arrived while this group was written
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._busy = False

    def _transaction(self, batches: list[Batch]) -> list[BaseException | None]:
        try:
            conn = self._connection()
        except Exception as exc:  # no connection (the database is down): nothing written
            return [self._failure(batch, exc) for batch in batches]
        if (
            self._driver_begin is not None
            and (len(batches) == 1 or self._driver_groups)
            and not any(batch.links() for batch in batches)
        ):
            return self._driver_batches(conn, batches, self._driver_begin)
        try:
            with conn.begin():
                return self._apply(conn, batches)
        except self._integrity_errors as exc:
            return [_Constraint(batches, exc) for _ in batches]
        except Exception as exc:  # the transaction failed: nobody's round was written
            return [self._failure(batch, exc) for batch in batches]

    def _driver_batches(
        self, conn: Connection, batches: list[Batch], begin: Callable[[Any], None]
    ) -> list[BaseException | None]:
        """Rounds that touch no other execution (the common case: one execution driven
        alone), in a transaction of the driver's own. SQLAlchemy's Transaction costs
        ~4 us here, and ~25 us is what the hop to the writer thread adds per round
        (storage.lanes): the round's writes already go through the driver's cursor."""
        try:
            # Reconnects here when the last group's connection died (a restart): that
            # may fail too, and is the group's failure like any other.
            driver = conn.connection.dbapi_connection
            assert driver is not None
        except Exception as exc:
            return [self._failure(batch, exc) for batch in batches]
        try:
            begin(driver)
            outcomes = self._apply(conn, batches)
            self._driver_commit(driver)
        except Exception as exc:
            try:
                driver.rollback()
            except Exception:  # the connection is gone: SQLAlchemy reconnects on next use
                conn.invalidate()
            if isinstance(exc, self._integrity_errors):
                return [_Constraint(batches, exc) for _ in batches]
            return [self._failure(batch, exc) for batch in batches]
        return outcomes

    def _failure(self, batch: Batch, exc: Exception) -> BaseException:
        """What the round's waiter is told: the database's condition as StorageError,
        said in a line where it is reported (runtime.leases); anything else (a value
        the driver cannot take, a mistake in the code) as raised, a bug to be seen with
        its traceback, not passed off as the database's."""
        if isinstance(exc, StorageError) or not self._trouble(exc):
            return exc
        detail = trouble_detail(exc)
        error = StorageError(f"could not commit execution {batch.execution_id}: {detail}")
        error.__cause__ = exc
        return error


def _commit(driver: Any) -> None:
    driver.commit()


def lone_round_rows(batch: Batch) -> int | None:
    """How many rows a lone round writes; None when it reaches other executions."""
    if batch.links():
        return None
    return len(batch.insert_steps) + len(batch.update_steps) + len(batch.events)


class _Constraint(StorageError):
    """A unique constraint refused the group's writes (normally: a step recorded twice)."""

    def __init__(self, batches: list[Batch], exc: Exception) -> None:
        who = batches[0].execution_id if len(batches) == 1 else f"{len(batches)} executions"
        cause = exc.orig if isinstance(exc, IntegrityError) else exc
        super().__init__(f"refused a write that would record a step twice in {who}: {cause}")
