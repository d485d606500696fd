"""Reading executions: a listing and its counts, one document (long-polled), its events,
who carries it on now, and how a prefix becomes an id (SPEC §4, §5). Every face reads
through these; :class:`flowledger.app.executions.Executions` adds starting and control.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Literal, cast

from pydantic_core import to_json

from flowledger.app.changes import RECHECK, ChangeHub, Subscription
from flowledger.app.cursors import CursorCodec
from flowledger.app.encoded import EncodedDocuments
from flowledger.app.limits import page_size
from flowledger.app.models import GetExecution, ListEvents, ListExecutions, PendingInputs, ResolveId
from flowledger.app.paging import Position, created_position, keyset_page
from flowledger.app.pending import document_of
from flowledger.app.results import EventPage, ExecutionsPage
from flowledger.app.slots import Slots
from flowledger.app.workflows import check_workflow_name
from flowledger.config import Limits
from flowledger.errors import AmbiguousIdError, NotFoundError
from flowledger.jsonvalues import encodable_text
from flowledger.runtime.documents import execution_document
from flowledger.runtime.engine import Engine
from flowledger.runtime.ids import known_execution_id
from flowledger.runtime.missing import missing_execution
from flowledger.runtime.orphans import abandoned, holder_words
from flowledger.runtime.refusals import Refusal, live_refusal
from flowledger.runtime.status import ExecutionStatus
from flowledger.storage import ExecutionQuery
from flowledger.storage.base import NEVER, Row
from flowledger.types import EventDocument, ExecutionDocument, PendingInput


@dataclass(frozen=True)
class Runner:
    """Who carries an execution on now, from its lease (``executions watch`` and
    ``show`` say it: tour 24's watch of what a killed ``run`` left waited in silence).

    ``state``: ``ended``; ``held`` by a live process (``holder``); or held by none:
    ``queued`` (never started; a worker or serve takes it), ``orphaned`` (running, its
    holder gone: killed, its lease lapsed, or interrupted; a worker takes it over at
    once), ``parked`` (until ``wake_at``, a timer or a retry; then a worker carries it
    on), ``waiting`` (for people, ``wake_at`` their due time if any, or for its children
    or a signal)."""

    state: Literal["ended", "held", "queued", "orphaned", "parked", "waiting"]
    #: Held: who holds it; orphaned: who held it last (None: released), in words.
    holder: str | None = None
    wake_at: datetime | None = None
    #: Who started it (``cli:run``: the next ``run`` of its workflow finishes it too).
    created_by: str = ""
    workflow: str = ""
    #: Queued or orphaned: a running worker's refusal of its workflow version (it lacks
    #: step types), when one was recorded (runtime.refusals).
    refusal: Refusal | None = None


class ExecutionReads:
    """The read operations on executions of one application."""

    def __init__(
        self,
        engine: Engine,
        codec: Callable[[], Awaitable[CursorCodec]],
        limits: Limits | None = None,
        *,
        hub: ChangeHub | None = None,
        slots: Slots | None = None,
    ) -> None:
        self._engine = engine
        self._hub = hub or ChangeHub(engine)
        self._codec = codec
        self._limits = limits or Limits()
        self._slots = slots or Slots(self._limits)
        self._encoded = EncodedDocuments(engine)

    # -- reading ------------------------------------------------------------------------------

    async def resolve_id(self, request: ResolveId) -> str:
        """A full execution id from a unique prefix of it."""
        prefix = request.prefix
        # No stored id holds a lone surrogate (an argument's undecodable byte): none found.
        found = (
            await self._engine.store.find_executions(prefix, MOST_MATCHES + 1)
            if encodable_text(prefix)
            else []
        )
        return _one(found, "execution", prefix)

    async def list(self, request: ListExecutions) -> ExecutionsPage:
        """One page, newest first (keyset pagination: stable while others insert); with
        ``include_total``, how many the filters select in all (:meth:`count`)."""
        limit = page_size(request, self._limits.max_page)
        codec = await self._codec()
        filters = request.filters()

        base = await self._query(request, limit + 1)  # id prefixes resolved once

        def fetch(n: int, before: Position | None) -> Awaitable[builtins.list[Row]]:
            return self._engine.store.list_executions(
                dataclasses.replace(base, limit=n, before=before)
            )

        page, cursor = await keyset_page(
            codec, "executions", filters, request.cursor, limit, fetch, created_position
        )
        items = [cast(ExecutionDocument, execution_document(row)) for row in page]
        total = None
        if request.include_total:
            total = await self._engine.store.count_executions(dataclasses.replace(base, limit=0))
        return ExecutionsPage(items=items, next_cursor=cursor, total=total)

    async def count(self, request: ListExecutions) -> int:
        """How many executions the listing selects in all (its pages together)."""
        return await self._engine.store.count_executions(await self._query(request, 0))

    async def count_ended(self, request: ListExecutions) -> int:
        """How many executions the listing's other filters select have ended (its status
        aside: any terminal one), in one read: a parent's ended children while ``watch``
        draws its sub-workflow step."""
        query = await self._query(request, 0)
        ended = tuple(status for status in ExecutionStatus if status.terminal)
        return await self._engine.store.count_executions(dataclasses.replace(query, status=ended))

    async def count_by_status(self, request: ListExecutions) -> dict[str, int]:
        """Every status (in SPEC order) → how many executions the listing's other filters
        select (its status aside: each status is counted), in one grouped read."""
        query = dataclasses.replace(await self._query(request, 0), status=None)
        found = await self._engine.store.count_by_status(query)
        return {status.value: found.get(status.value, 0) for status in ExecutionStatus}

    async def _query(self, request: ListExecutions, limit: int) -> ExecutionQuery:
        parent_id, job_run_id = request.parent_id, request.job_run_id
        if request.workflow:  # a typo listed nothing, silently (tour 25 M9)
            await check_workflow_name(self._engine.store, request.workflow)
        if request.id_prefixes and parent_id:
            parent_id = await self.resolve_id(ResolveId(prefix=parent_id))
        if request.id_prefixes and job_run_id:
            job_run_id = _one(
                await self._engine.store.find_job_runs(job_run_id, MOST_MATCHES + 1),
                "job run",
                job_run_id,
            )
        return ExecutionQuery(
            status=_statuses(request.status),
            workflow=request.workflow,
            correlation_id=request.correlation_id,
            parent_id=parent_id,
            top_level=request.top_level,
            job_run_id=job_run_id,
            created_by=request.created_by,
            created_after=request.created_after,
            created_before=request.created_before,
            input=request.input_matches(),
            limit=limit,
        )

    async def get(self, request: GetExecution) -> ExecutionDocument:
        """The execution with its steps; with ``wait``, once it ends or waits for input
        (or when ``wait`` seconds have passed, then as it is).

        An execution AwaitingUserInput that was sent input or a cancel it has not acted
        on yet is not "waiting for people" any more: the wait goes on until it moves
        (decision: a client that submits input, then long-polls, sees the result).
        The wait is woken by the change hub (app.changes) within milliseconds of the
        commit, in this process or another; it reads only the execution row on each
        wake-up and the full document once. ``caller`` counts against the caller's
        limit of concurrent waits (TooManyError past it)."""
        if request.wait <= 0:
            return await self._document(request.id)
        if _settled(await self._row(request.id)):
            return await self._document(request.id)
        with self._slots.take("wait", request.caller), self._hub.subscribe(request.id) as sub:
            row = await self._row(request.id)  # anything since the first read
            await self._wait_for(sub, row, _settled, request.wait)
        return await self._document(request.id)

    async def _wait_for(
        self, sub: Subscription, row: Row, done: Callable[[Row], bool], wait: float
    ) -> Row:
        """The execution's ``row``, read again at each change ``sub`` hears (and every
        RECHECK seconds), until ``done(row)``, ``wait`` seconds have passed, or the server
        stops (its long polls answer at once: ChangeHub.end_waits)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not done(row) and not self._hub.ending:
            left = deadline - loop.time()
            if left <= 0:
                break
            await sub.wait(min(left, RECHECK))
            row = await self._row(str(row["id"]))
        return row

    async def get_json(self, request: GetExecution) -> bytes:
        """:meth:`get` as JSON bytes, what the HTTP face sends: without a wait, from the
        rows read now, reusing the bytes last built from equal rows (app.encoded)."""
        if request.wait <= 0:
            return await self._encoded.execution(request.id)
        return to_json(await self.get(request))

    async def _row(self, execution_id: str) -> Row:
        known_execution_id(execution_id)
        row = await self._engine.store.get_execution(execution_id)
        if row is None:
            raise await missing_execution(self._engine.store, execution_id)
        return row

    async def events(self, request: ListEvents) -> EventPage:
        """One page of the event history after ``after_seq``, oldest first (a default
        page when no ``limit`` is given: a loop of many iterations has tens of thousands
        of events)."""
        limit = page_size(request, self._limits.max_page)
        found = await self._engine.events(request.id, request.after_seq, limit + 1)
        items = found[:limit]
        more = len(found) > limit and items
        return {"items": items, "nextCursor": str(items[-1]["seq"]) if more else None}

    async def history(self, request: ListEvents) -> AsyncIterator[builtins.list[EventDocument]]:
        """Every event after ``after_seq``, oldest first, a page at a time: what a reader
        of the whole history (``executions events``, a timeline, the seed's states)
        walks through, never a first page taken for all."""
        while True:
            page = await self.events(request)
            if page["items"]:
                yield page["items"]
            if page["nextCursor"] is None:
                return
            request = request.model_copy(update={"after_seq": int(page["nextCursor"])})

    async def runner(self, request: GetExecution) -> Runner:
        """Who carries the execution on now (see :class:`Runner`), from its row alone."""
        row = await self._row(request.id)
        status = ExecutionStatus(row["runtime_status"])
        owner = row["lease_owner"]
        made = partial(
            Runner, created_by=str(row["created_by"]), workflow=str(row["workflow_name"])
        )
        if status.terminal:
            return made("ended")
        if not abandoned(row, self._engine.clock.lease_now()):
            return made("held", holder_words(owner, self._engine.owner))
        wake = None if row["wake_at"] is None else _aware(row["wake_at"])
        on_signal = wake is not None and wake >= NEVER  # parked with no timer at all
        if status == ExecutionStatus.AWAITING_USER_INPUT or on_signal:
            return made("waiting", wake_at=None if on_signal else wake)
        if wake is not None:
            return made("parked", wake_at=wake)
        refusal = await live_refusal(self._engine.store, str(row["workflow_version_id"]))
        if status == ExecutionStatus.NOT_STARTED:
            return made("queued", refusal=refusal)
        holder = holder_words(owner, self._engine.owner) if owner else None
        return made("orphaned", holder, refusal=refusal)

    async def ancestors(self, request: GetExecution) -> builtins.list[str]:
        """The ids of the executions above this one: its parent, that one's, up to the
        root (none for a root), read from their rows alone."""
        found: builtins.list[str] = []
        parent = (await self._row(request.id))["parent_id"]
        while parent is not None and parent not in found:
            found.append(str(parent))
            row = await self._engine.store.get_execution(str(parent))
            parent = row["parent_id"] if row is not None else None
        return found

    async def pending_inputs(self, request: PendingInputs) -> builtins.list[PendingInput]:
        """Steps waiting for a person, in this execution and its children."""
        await self._document(request.id)
        return await self._engine.pending_inputs(request.id)

    async def _document(self, execution_id: str) -> ExecutionDocument:
        """The execution's document as every read of it gives it (app.pending)."""
        found = await self._engine.store.read_execution(execution_id)
        if found is None:
            raise await missing_execution(self._engine.store, execution_id)
        document, _ = await document_of(self._engine, *found)
        return document


def _aware(moment: datetime) -> datetime:
    """A stored time (SQLite's come back naive, in UTC) with its zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _statuses(
    status: ExecutionStatus | builtins.list[ExecutionStatus] | None,
) -> ExecutionStatus | tuple[ExecutionStatus, ...] | None:
    return tuple(status) if isinstance(status, list) else status


#: Ids a prefix that several start with is answered with (people pick theirs).
MOST_MATCHES = 10


def _one(found: builtins.list[str], what: str, prefix: str) -> str:
    """The one id a prefix names (NotFoundError for none; AmbiguousIdError, naming up to
    MOST_MATCHES of them, for several)."""
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFoundError(f"no {what} has an id starting with {prefix!r}")
    matches = found[:MOST_MATCHES]
    named = ", ".join(matches) + (", …" if len(found) > len(matches) else "")
    raise AmbiguousIdError(
        f"several {what}s have ids starting with {prefix!r} ({named}); give more",
        matches,
        more=len(found) > len(matches),
    )


def _settled(row: Row) -> bool:
    """Where a long poll returns: terminal, or waiting for people with nothing sent to
    it that it has yet to act on (input, a cancel: ``signals_sent > signals_taken``)."""
    status = ExecutionStatus(row["runtime_status"])
    if status.terminal:
        return True
    pending = int(row.get("signals_sent") or 0) > int(row.get("signals_taken") or 0)
    return status == ExecutionStatus.AWAITING_USER_INPUT and not pending
